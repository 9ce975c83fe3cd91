"""Load test of notebook 08's model server: many requests at once on loopback, with a promotion and a rollback.

    python benchmarks/serving_load.py [--requests 2000] [--concurrency 8] [--registry real|fake]
                                      [--generate-share 0.25] [--new-tokens 8] [--torch-threads N]

The registry holds v1 = lifetime-67k (the served champion, language synthetic-v3) and v2 = laptop-67k (the
candidate; its language "synthetic" has the same words, so it reads the same text). `cot_lab.deploy.serving.serve`
runs it at 127.0.0.1 in this process; `--concurrency` threads, each with its own httpx.Client, send `--requests`
requests between them: /score of validation documents (16..128 tokens), and a share of /generate (greedy,
`--new-tokens` each). When a third of the requests are answered the champion alias moves to v2 (a promotion),
at two thirds back to v1 (a rollback), through the registry only: the server is never restarted.

Printed: requests, errors (must be 0), client-side latency p50/p99 (ms, from sending to the parsed answer),
the server's own p50/p99 from its request log, requests/s over the whole run, the versions served in each
phase, and two checks on every answer: it names a version the registry has, and its loss is the one that
version gives that text (computed here beforehand, to 1e-4 nats), so the name is the truth. --registry real
(default, needs MLflow) uses cot_lab.deploy.registry.Registry in a temporary folder, promote() and rollback();
fake uses a dict with the same four methods. Clients and server share this process (and its GIL).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

import cot_lab as cl
from cot_lab.core.evaluate import sequence_losses
from cot_lab.deploy.serving import serve


@dataclass(frozen=True)
class Version:
    version: int
    corpus: str
    corpus_fingerprint: str


class DictRegistry:
    """The serving interface of the registry (alias, load, get, versions) over a dict of models."""

    def __init__(self, models: dict):
        self.models = {v: (Version(v, c, cl.load_corpus(c).fingerprint), m) for v, (c, m) in models.items()}
        self.aliases: dict[str, int] = {}

    def alias(self, name):
        return self.aliases.get(name)

    def get(self, version):
        if version not in self.models:
            raise ValueError(f"version={version} does not exist")
        return self.models[version][0]

    def load(self, ref):
        return self.models[self.aliases[ref] if isinstance(ref, str) else self.get(ref).version]

    def versions(self):
        return [record for record, _ in self.models.values()]


def make_registry(kind: str, models: dict, folder: str):
    """(registry, promote(), rollback()) of the kind asked; v1 is the champion."""
    if kind == "fake":
        reg = DictRegistry(models)
        reg.aliases["champion"] = 1
        return reg, (lambda: reg.aliases.update(champion=2)), (lambda: reg.aliases.update(champion=1))
    from cot_lab.deploy.registry import Registry

    reg = Registry(folder)
    for version in sorted(models):
        corpus, model = models[version]
        reg.register(model, corpus=corpus, description=f"load test v{version}")
    reg.promote(1)
    return reg, (lambda: reg.promote(2, force=True, reason="load test: promotion")), (lambda: reg.rollback())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--registry", choices=("real", "fake"), default="real")
    parser.add_argument("--generate-share", type=float, default=0.25, help="share of requests that are /generate")
    parser.add_argument("--new-tokens", type=int, default=8, help="max_new_tokens of each /generate")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads for the server (default: torch's own, one per core)")
    args = parser.parse_args(argv)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    import httpx

    t0 = time.perf_counter()
    models = {1: ("synthetic-v3", cl.shipped_model("lifetime-67k")[0]), 2: ("synthetic", cl.shipped_model("laptop-67k")[0])}
    corpus = cl.load_corpus("synthetic-v3")
    rng = np.random.default_rng(0)
    rows = corpus.val_batch(64, 128)
    texts = [corpus.decode(row[: int(rng.integers(16, 129))]) for row in rows]  # 16..128 tokens each
    # prompts to continue: at most 64 tokens, so that prompt + new tokens stay within the context of 128
    prompts = [corpus.decode(row[: int(rng.integers(8, 65))]) for row in rows]
    # the loss each version gives each text, to check that the version an answer names is the one that scored it
    languages = {v: cl.load_corpus(c) for v, (c, _) in models.items()}
    expected = {v: [float(sequence_losses(m, torch.tensor([languages[v].encode(t)])).mean()) for t in texts]
                for v, (_, m) in models.items()}
    print(f"texts ready in {time.perf_counter() - t0:.1f} s", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        reg, promote, rollback = make_registry(args.registry, models, folder)
        valid = {mv.version for mv in reg.versions()}
        print(f"registry ready in {time.perf_counter() - t0:.1f} s", flush=True)
        with serve(reg, log_path=f"{folder}/requests.sqlite") as server:
            results = run_load(httpx, server.url, texts, prompts, args, promote, rollback)
            log = server.log
            server_p = log.latency_percentiles((50, 99))
            logged = len(log)
            passed = report(results, expected, valid, server_p, logged, args, torch.get_num_threads())
    return 0 if passed else 1


def run_load(httpx, url: str, texts: list[str], prompts: list[str], args, promote, rollback) -> dict:
    """Send the requests from `concurrency` threads; move the alias at 1/3 and 2/3 of the answers."""
    n, counter, lock = args.requests, itertools.count(), threading.Lock()
    answers: list[dict] = []
    phase = {"now": "before promotion"}

    def worker(seed: int):
        pick = np.random.default_rng(seed)
        with httpx.Client(base_url=url, timeout=60) as http:
            while (i := next(counter)) < n:
                t = int(pick.integers(len(texts)))
                generate = pick.random() < args.generate_share
                started_in, start = phase["now"], time.perf_counter()
                try:
                    r = http.post("/generate" if generate else "/score",
                                  json={"text": prompts[t], "max_new_tokens": args.new_tokens} if generate
                                  else {"text": texts[t]})
                    body, status = r.json(), r.status_code
                except Exception as error:  # noqa: BLE001 - a lost request is counted, not raised
                    body, status = {"detail": repr(error)}, None
                ms = 1e3 * (time.perf_counter() - start)
                with lock:
                    answers.append({"i": i, "text": t, "generate": generate, "status": status, "ms": ms,
                                    "detail": body.get("detail"),
                                    "version": body.get("version"), "loss": body.get("loss"),
                                    "phase": started_in, "ended_in": phase["now"], "ok": status == 200})
                    done = len(answers)
                # the alias moves from a client's thread once, when a third (then two thirds) are answered
                # ("moving" while the registry call runs: a request sent then may see either version)
                for at, move, after in ((n // 3, promote, "after promotion"), (2 * n // 3, rollback, "after rollback")):
                    if done == at:
                        phase["now"] = "moving"
                        move()
                        phase["now"] = after

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"answers": answers, "wall_s": wall}


def report(results: dict, expected: dict, valid: set, server_p: dict, logged: int, args, threads: int) -> bool:
    """Print the numbers; True when there were no errors, every answer named a valid version and the right one."""
    answers = results["answers"]
    ok = [a for a in answers if a["ok"]]
    errors = len(answers) - len(ok)
    ms = np.array([a["ms"] for a in answers])
    named_valid = all(a["version"] in valid for a in answers)
    scored = [a for a in ok if not a["generate"]]
    mismatched = sum(abs(a["loss"] - expected[a["version"]][a["text"]]) > 1e-4 for a in scored)
    print(f"registry {args.registry}; {args.concurrency} client threads on loopback; torch threads {threads}; "
          f"{args.generate_share:.0%} /generate ({args.new_tokens} new tokens), the rest /score")
    print(f"requests {len(answers)}, errors {errors}, server log rows {logged}")
    for a in [a for a in answers if not a["ok"]][:5]:
        print(f"  error: {a['status']} {a['detail']}")
    print(f"latency (client) p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms; "
          f"(server) p50 {server_p[50.0]:.1f} ms, p99 {server_p[99.0]:.1f} ms")
    print(f"throughput {len(answers) / results['wall_s']:.0f} requests/s over {results['wall_s']:.1f} s")
    in_phase_right = True
    for name, want in (("before promotion", 1), ("after promotion", 2), ("after rollback", 1)):
        sent = [a for a in answers if a["phase"] == a["ended_in"] == name]  # sent and answered within the phase
        counts = {v: sum(a["version"] == v for a in sent) for v in sorted(valid)}
        in_phase_right &= counts.get(want, 0) == len(sent) > 0
        print(f"  {name:>17}: {len(sent)} requests sent and answered in it, versions served {counts}")
    straddling = sum(a["phase"] != a["ended_in"] for a in answers)
    print(f"  {straddling} requests were in flight during an alias move (either version is right for them)")
    print(f"every response named a valid version ({sorted(valid)}): {named_valid}; each phase served its champion "
          f"only: {in_phase_right}; scores whose loss is not the named version's: {mismatched} of {len(scored)}")
    return errors == 0 and named_valid and in_phase_right and mismatched == 0


if __name__ == "__main__":
    sys.exit(main())
