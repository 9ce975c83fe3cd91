"""Serving (notebook 08) against a real uvicorn on 127.0.0.1 with httpx as the client: a fake registry of two
shipped models (v1 = laptop-67k on "synthetic", v2 = lifetime-67k on "synthetic-v3"), and once the real one."""
import math
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass

import pytest
import torch

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import cot_lab as cl  # noqa: E402
from cot_lab.core.evaluate import sequence_losses  # noqa: E402
from cot_lab.deploy.request_log import RequestLog  # noqa: E402
from cot_lab.deploy.serving import serve  # noqa: E402
from cot_lab.evaluation.memorisation import greedy_continuation  # noqa: E402

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("one_torch_thread")]  # tests/conftest.py


@dataclass(frozen=True)
class FakeVersion:
    version: int
    corpus: str
    corpus_fingerprint: str


class FakeRegistry:
    """The registry's serving interface (alias, load, get, versions) over a dict; set_alias moves an alias."""

    def __init__(self, models: dict, root):
        self.root = root  # as the kit's Registry has: the request log goes there by default
        self._models = {v: (FakeVersion(v, corpus, cl.load_corpus(corpus).fingerprint), model)
                        for v, (corpus, model) in models.items()}
        self._aliases: dict[str, int] = {}
        self.loads: list[int] = []

    def set_alias(self, name: str, version: int | None) -> None:
        if version is None:
            self._aliases.pop(name, None)
        else:
            self._aliases[name] = self.get(version).version

    def alias(self, name: str) -> int | None:
        return self._aliases.get(name)

    def get(self, version: int) -> FakeVersion:
        if version not in self._models:
            raise ValueError(f"version={version} does not exist; the versions are {sorted(self._models)}")
        return self._models[version][0]

    def load(self, ref):
        version = self._aliases[ref] if isinstance(ref, str) else self.get(ref).version
        self.loads.append(version)
        return self._models[version]

    def versions(self) -> list[FakeVersion]:
        return [record for record, _ in self._models.values()]




@pytest.fixture(scope="module")
def models():
    """{version: (corpus name, model)} of the two shipped models."""
    return {1: ("synthetic", cl.shipped_model("laptop-67k")[0]), 2: ("synthetic-v3", cl.shipped_model("lifetime-67k")[0])}


@pytest.fixture()
def registry(models, tmp_path):
    reg = FakeRegistry(models, tmp_path)
    reg.set_alias("champion", 1)
    reg.set_alias("challenger", 2)
    return reg


@pytest.fixture(scope="module")
def texts():
    """Validation documents of synthetic-v3 as text (41 tokens each); every word is also in "synthetic"."""
    corpus = cl.load_corpus("synthetic-v3")
    return [corpus.decode(row) for row in corpus.val_batch(24, 40)]


def client(server) -> "httpx.Client":
    return httpx.Client(base_url=server.url, timeout=60)


def words(text: str, n: int) -> str:
    """The first n words of text: a prefix that is still text of the language (a cut word would not be)."""
    return " ".join(text.split()[:n])


def expected_loss(models, version: int, text: str) -> float:
    corpus, model = models[version]
    ids = cl.load_corpus(corpus).encode(text)
    return float(sequence_losses(model, torch.tensor([ids])).mean())


def test_round_trip_names_the_version_and_matches_the_library(registry, models, texts, tmp_path):
    registry.set_alias("champion", 2)
    registry.set_alias("challenger", None)
    corpus, model = cl.load_corpus("synthetic-v3"), models[2][1]
    with serve(registry, log_path=tmp_path / "log.sqlite") as server, client(server) as http:
        assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
        assert http.get("/health").json() == {"status": "ok", "version": 2}
        assert http.get("/version").json() == {"alias": "champion", "version": 2, "challenger": None, "canary": 0.0,
                                               "shadow": False}
        ids = corpus.encode(texts[0])
        got = http.post("/score", json={"text": texts[0]})
        assert got.status_code == 200 and got.headers["x-model-version"] == "2"
        body = got.json()
        assert body["version"] == 2 and body["route"] == "champion" and body["tokens"] == len(ids) == 41
        assert abs(body["loss"] - float(sequence_losses(model, torch.tensor([ids])).mean())) < 1e-5

        prompt = ids[:20]
        want = greedy_continuation(model, torch.tensor([prompt]), 12)[0].tolist()
        body = http.post("/generate", json={"text": corpus.decode(prompt), "max_new_tokens": 12}).json()
        assert body == {"version": 2, "route": "champion", "text": corpus.decode(want), "new_tokens": 12, "ids": want,
                        "tokens": 20}

        pinned = http.post("/score", json={"text": texts[0], "version": 1}).json()  # v1 reads "synthetic"
        assert pinned["version"] == 1 and pinned["route"] == "pinned"
        assert abs(pinned["loss"] - expected_loss(models, 1, texts[0])) < 1e-5
    assert registry.loads == [2, 1]  # each version loaded once, the champion before the first request


def test_a_moved_alias_is_served_at_the_next_request_with_no_restart_and_no_request_lost(registry, texts):
    registry.set_alias("challenger", None)
    with serve(registry) as server, client(server) as http:
        assert server.log.path == registry.root / "requests.sqlite"  # by default, beside the registry's files
        versions = []
        for to in (2, 1, 2):
            versions.append(http.post("/score", json={"text": texts[0]}).json()["version"])
            registry.set_alias("champion", to)
        versions.append(http.post("/score", json={"text": texts[0]}).json()["version"])
        assert versions == [1, 2, 1, 2]

        answers, stop = [], threading.Event()

        def traffic():
            with client(server) as own:
                while not stop.is_set():
                    answers.append(own.post("/score", json={"text": texts[1]}))

        threads = [threading.Thread(target=traffic) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(10):  # promotions and rollbacks while four clients keep asking: a few answers after each
            registry.set_alias("champion", 2 - i % 2)
            seen = len(answers)
            while len(answers) < seen + 4 and all(t.is_alive() for t in threads):
                threading.Event().wait(0.005)
        stop.set()
        for t in threads:
            t.join()
        assert len(answers) >= 40 and all(a.status_code == 200 for a in answers)
        assert {a.json()["version"] for a in answers} == {1, 2}
    assert sorted(set(registry.loads)) == [1, 2] and len(registry.loads) == 2  # the cache held


def test_canary_share_is_binomial_and_set_canary_changes_it_live(registry, texts):
    n, share = 600, 0.3
    with serve(registry, canary=share, seed=7) as server, client(server) as http:
        routes = [http.post("/score", json={"text": "<doc> the greebut gonels ."}).json() for _ in range(n)]
        canary = sum(r["route"] == "canary" for r in routes)
        assert all((r["route"], r["version"]) in {("champion", 1), ("canary", 2)} for r in routes)
        se = math.sqrt(share * (1 - share) / n)
        assert abs(canary / n - share) < 3 * se, (canary, n)
        assert server.log.counts_by_version() == {1: n - canary, 2: canary}
        server.set_canary(0.0)
        assert {http.post("/score", json={"text": texts[0]}).json()["route"] for _ in range(20)} == {"champion"}
        server.set_canary(1.0)
        assert http.get("/version").json()["canary"] == 1.0
        assert {http.post("/score", json={"text": texts[0]}).json()["route"] for _ in range(20)} == {"canary"}
        with pytest.raises(ValueError, match="canary"):
            server.set_canary(1.5)


def test_shadow_logs_one_copy_per_request_and_never_changes_the_answer(registry, models, texts, tmp_path):
    with serve(registry, log_path=tmp_path / "plain.sqlite") as plain, client(plain) as http:
        without = [http.post("/score", json={"text": t}).json() for t in texts[:12]]
    with serve(registry, shadow=True, log_path=tmp_path / "shadow.sqlite") as server, client(server) as http:
        with_shadow = [http.post("/score", json={"text": t}).json() for t in texts[:12]]
        generated = http.post("/generate", json={"text": texts[0], "max_new_tokens": 4}).json()
    assert with_shadow == without and all(r["version"] == 1 for r in with_shadow)
    assert generated["version"] == 1 and generated["route"] == "champion"
    log = server.log.frame()  # stop() waited for the queued shadow copies
    shadow = log[log.route == "shadow"]
    assert len(shadow) == 13 and set(shadow.version) == {2} and set(shadow.status) == {200}
    for text, loss in zip(texts[:12], shadow.loss[shadow.endpoint == "score"]):
        assert abs(loss - expected_loss(models, 2, text)) < 1e-5
    assert server.log.counts_by_version() == {1: 13} and server.log.counts_by_version(route="shadow") == {2: 13}


BAD = [  # (what, request kwargs, status, words the message must hold)
    ("empty text", dict(json={"text": ""}), 422, "text is empty"),
    ("blank text", dict(json={"text": "  \n "}), 422, "text is empty"),
    ("1 MB of text", dict(json={"text": "the " * 262_144}), 413, "64 KiB"),
    ("65 KiB of text", dict(json={"text": "a" * (65 * 1024)}), 413, "64 KiB"),
    ("invalid UTF-8", dict(content=b'{"text": "the \xff\xfe zorn"}', headers={"content-type": "application/json"}),
     400, "not valid UTF-8"),
    ("not JSON", dict(content=b'{"text": ', headers={"content-type": "application/json"}), 400, "not JSON"),
    ("no text", dict(json={"words": "the"}), 422, "text: Field required"),
    ("text not a string", dict(json={"text": 12}), 422, "text: Input should be a valid string"),
    ("unknown version", dict(json={"text": "<doc> the", "version": 99}), 404, "version=99"),
    ("outside the language", dict(json={"text": "<doc> the flibbertigibbet"}), 422, "does not have"),
    ("one token", dict(json={"text": "<doc>"}), 422, "at least 2"),
]
BAD_GENERATE = [
    ("zero new tokens", dict(json={"text": "<doc> the", "max_new_tokens": 0}), 422, "greater than or equal to 1"),
    ("negative new tokens", dict(json={"text": "<doc> the", "max_new_tokens": -3}), 422, "max_new_tokens"),
    ("beyond the context", dict(json={"text": "<doc> the", "max_new_tokens": 1000}), 422, "context of 128"),
    ("new tokens not an int", dict(json={"text": "<doc> the", "max_new_tokens": 2.5}), 422, "max_new_tokens"),
]


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(registry, texts):
    corpus = cl.load_corpus("synthetic")
    with pytest.raises(ValueError) as unknown:
        corpus.encode("<doc> the flibbertigibbet")
    with serve(registry) as server, client(server) as http:
        for endpoint, cases in (("/score", BAD), ("/generate", BAD_GENERATE)):
            for what, kwargs, status, said in cases:
                got = http.post(endpoint, **kwargs)
                assert got.status_code == status, (what, got.status_code, got.text[:300])
                assert said in got.json()["detail"] and "version" in got.json(), (what, got.json())
                good = http.post(endpoint, json={"text": words(texts[0], 8)} | ({"max_new_tokens": 2} if "gen" in
                                                                                   endpoint else {}))
                assert good.status_code == 200 and good.json()["version"] == 1, what
        outside = http.post("/score", json={"text": "<doc> the flibbertigibbet"}).json()
        assert outside["detail"] == str(unknown.value) and outside["version"] == 1  # the encoder's own message
        assert http.get("/nowhere").status_code == 404 and http.get("/health").json()["status"] == "ok"
    frame = server.log.frame()
    assert len(frame[frame.status >= 400]) == len(BAD) + len(BAD_GENERATE) + 2
    assert frame[frame.status >= 400].error.notna().sum() == len(BAD) + len(BAD_GENERATE) + 1  # all but /nowhere


def test_stop_frees_the_port_a_busy_port_and_other_hosts_are_refused(registry):
    server = serve(registry)
    port = server.port
    with client(server) as http:
        assert http.get("/health").status_code == 200
    with pytest.raises(ValueError, match=f"port={port} is in use; pass port=0 for a free one or stop the other server"):
        serve(registry, port=port)
    assert httpx.get(f"{server.url}/health").status_code == 200  # the refused second server took nothing away
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=5)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))  # free again
    with serve(registry, port=port) as again:
        assert again.port == port and httpx.get(f"{again.url}/health").json()["version"] == 1
    for host in ("0.0.0.0", "localhost", "::"):
        with pytest.raises(ValueError, match="127.0.0.1 only"):
            serve(registry, host=host)
    registry.set_alias("champion", None)
    with pytest.raises(ValueError, match="points to no version"):
        serve(registry)


def test_the_request_log_holds_every_request_with_its_version_and_latency(registry, texts, tmp_path):
    path = tmp_path / "requests.sqlite"
    with serve(registry, log_path=path, canary=0.5) as server, client(server) as http:
        for text in texts[:20]:
            http.post("/score", json={"text": text})
        for text in texts[:4]:
            http.post("/generate", json={"text": words(text, 10), "max_new_tokens": 3})
        http.post("/score", json={"text": ""})
        http.get("/health")
    frame = RequestLog(path).frame()  # a second reader of the same file sees it all
    assert len(frame) == 26 and list(frame.endpoint).count("score") == 21 and list(frame.endpoint).count("generate") == 4
    answered = frame[frame.status == 200]
    assert answered.version.notna().all() and (answered.latency_ms > 0).all() and (frame.latency_ms > 0).all()
    scored = answered[answered.endpoint == "score"]
    assert scored.loss.notna().all() and (scored.tokens == 41).all() and set(scored.route) <= {"champion", "canary"}
    assert (answered[answered.endpoint == "generate"].new_tokens == 3).all()
    p = server.log.latency_percentiles((50, 90, 99))
    assert 0 < p[50] <= p[90] <= p[99] <= frame.latency_ms.max()
    assert server.log.error_rate() == pytest.approx(1 / 26) and server.log.error_rate(server_only=True) == 0
    counts = server.log.counts_by_version()
    assert sum(counts.values()) == 26 and counts[None] == 1 and set(counts) == {None, 1, 2}
    assert server.log.latency_percentiles((50,), endpoint="generate")[50] > 0


def test_the_real_registry_is_served_promoted_and_rolled_back(tmp_path, models, texts):
    pytest.importorskip("mlflow")
    registry_module = pytest.importorskip("cot_lab.deploy.registry")
    reg = registry_module.Registry(tmp_path / "registry")
    reg.register(models[2][1], corpus="synthetic-v3")
    reg.register(models[1][1], corpus="synthetic")
    reg.promote(1)
    with serve(reg) as server, client(server) as http:
        assert server.log.path == reg.root / "requests.sqlite"  # the log sits beside the registry
        assert http.get("/health").json() == {"status": "ok", "version": 1}
        first = http.post("/score", json={"text": texts[0]}).json()
        assert first["version"] == 1 and abs(first["loss"] - expected_loss(models, 2, texts[0])) < 1e-5
        reg.promote(2, force=True, reason="the serving test")
        assert http.post("/score", json={"text": texts[0]}).json()["version"] == 2
        assert reg.rollback() == 1
        assert http.post("/score", json={"text": texts[0]}).json()["version"] == 1
        assert http.post("/score", json={"text": texts[0], "version": 7}).status_code == 404


def test_fastapi_and_uvicorn_load_only_when_a_server_is_built(registry, monkeypatch):
    code = ("import sys, cot_lab, cot_lab.deploy.serving, cot_lab.deploy.request_log, cot_lab.deploy.request_checks; "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'pydantic') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the deploy extra were not installed
    with pytest.raises(ImportError, match=r'pip install "cot-lab\[deploy\]"'):
        serve(registry)
