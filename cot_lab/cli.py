"""The `cot-lab` command: `doctor`, `train` (one budgeted run), `sweep`, `fit` and `precompute` (for instructors).

Every error is one line, `cot-lab <command>: error: --flag ...`, exit status 2: it names the flag
the user typed (not the library argument behind it) and, where there are choices, lists them.
"""
from __future__ import annotations

import argparse
import platform
import re
import sys

from cot_lab.core.profiles import PROFILES

# Library argument names whose flag is not the name with dashes: `--params` is `preset(n_params=...)`.
FLAG_OF_ARGUMENT = {"n_params": "--params", "sizes_per_budget": "--sizes", "budgets[]": "--budgets", "root": "--store",
                    "profile": "--precomputed"}
LICENCE_HELP = ("the licence of a local --corpus folder without a LICENSE file, e.g. CC-BY-4.0 (an SPDX identifier) "
                "or 'proprietary, own use': its datasheet records it")
OFFLINE_CORPORA = "--corpus synthetic, python-docs, python-code or a path to a text file or folder"
CORPUS_HELP = "synthetic | python-docs | python-code | a path | hf:<dataset> (needs a network)"


class CliError(Exception):
    """A user error already worded in the command's own terms (its flags): printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse's usage block would bury the one line that says what to fix
        self.exit(2, f"{self.prog}: error: {message}\n")


def in_flag_terms(message: str, flags: dict[str, str]) -> str:
    """`message` with each `name=` of a library argument written as its flag: 'flops=1e3' -> '--flops 1e3'."""
    if not flags:
        return message
    names = "|".join(re.escape(name) for name in sorted(flags, key=len, reverse=True))
    return re.sub(rf"(?<![\w\-\[])({names})=", lambda m: f"{flags[m.group(1)]} ", message)


def _flags_of(args) -> dict[str, str]:
    """Library argument name -> flag, for the flags this command has (`batch_size` -> `--batch-size`)."""
    mine = {name: "--" + name.replace("_", "-") for name in vars(args) if name not in ("func", "command")}
    mine.update({name: flag for name, flag in FLAG_OF_ARGUMENT.items() if flag[2:].replace("-", "_") in vars(args)})
    return mine


def _load_corpus(name: str, licence: str | None = None):
    """load_corpus(name), with every failure, the hub's offline one included, one line about --corpus; a local
    folder's `licence` (--licence) goes with it."""
    from pathlib import Path

    from cot_lab.data import load_corpus

    try:
        if licence is not None and not Path(name).expanduser().exists():
            raise ValueError(f"--licence {licence!r} declares the terms of a local text file or folder; --corpus "
                             f"{name} is not one (the built-in corpora have their licences recorded)")
        return load_corpus(name, **({"licence": licence} if licence is not None else {}))
    except (ValueError, OSError) as error:  # OSError: FileNotFoundError, and the hub's ConnectionError
        message = str(error)
        if isinstance(error, ConnectionError):
            from cot_lab.data.hub import OFFLINE_HINT

            message = message.replace(OFFLINE_HINT, f"Offline, use {OFFLINE_CORPORA}.")
        else:
            message = in_flag_terms(message, {"name": "--corpus"})
            if "licence" in message and licence is None:
                message += "; from the command line: --licence CC-BY-4.0"
        if not message.startswith("--corpus"):
            message = f"--corpus {name}: {message}"
        raise CliError(message) from None


def _store(path, *, create: bool):
    """The run store at --store `path` (None: the default one); create=False: it must exist, nothing is made."""
    from cot_lab.core.runs import RunStore, default_root

    try:
        store = RunStore(path, create=create)
    except FileNotFoundError:
        where = f"--store {path}" if path is not None else f"no --store given, and the default folder {default_root()}"
        raise CliError(f"{where} holds no run store; give a folder that `cot-lab train` or `cot-lab sweep --store` "
                       f"wrote (only they create one)") from None
    if store.created:
        print(f"store  {store.db_path}: new, created by this command")
    return store


def _doctor(args) -> int:
    import torch
    import transformers

    from cot_lab import __version__
    from cot_lab.core.device import autocast_dtype, detect_device, device_name, measure_peak_flops, precision_name
    from cot_lab.core.paths import home
    from cot_lab.core.runs import RunStore, default_root

    device = detect_device()
    amp = autocast_dtype(device)
    print(f"cot-lab {__version__}  python {platform.python_version()}  torch {torch.__version__}  "
          f"transformers {transformers.__version__}")
    print(f"device      {device.type}  ({device_name(device)}, {torch.get_num_threads()} threads)")
    print(f"precision   {precision_name(amp)} autocast")
    print("measuring peak matmul FLOP/s (cached after the first time)...", flush=True)
    fp32 = measure_peak_flops(device, torch.float32)
    print(f"peak fp32   {fp32 / 1e9:,.0f} GFLOP/s")
    if amp is not None:
        print(f"peak {str(amp).removeprefix('torch.')}  {measure_peak_flops(device, amp) / 1e9:,.0f} GFLOP/s")
    print(f"home        {home()}")
    try:
        store = RunStore(create=False)
        print(f"run store   {store.root}  ({len(store)} runs)")
    except FileNotFoundError:  # doctor only looks: `train` and `sweep` create the store
        print(f"run store   {default_root()}  (none yet: `cot-lab train` or `cot-lab sweep` creates it)")
    return 0


def _train(args) -> int:
    from cot_lab.core.accounting import count_params, flops_per_token
    from cot_lab.core.shapes import preset
    from cot_lab.core.training import train

    device = _device(args.device)
    corpus = _load_corpus(args.corpus, args.licence)
    cfg = preset(args.params, vocab_size=corpus.vocab_size, seq_len=args.seq_len)
    n = count_params(cfg)
    _check_size(args.params, n.total, cfg)
    budget = {k: getattr(args, k) for k in ("flops", "tokens", "seconds") if getattr(args, k) is not None}
    print(f"model  d_model={cfg.d_model} n_layer={cfg.n_layer} n_head={cfg.n_head}: {n.total:,} params "
          f"({n.non_embedding:,} non-embedding), {flops_per_token(cfg):.3g} FLOPs/token")
    store = None if args.no_store else _store(None, create=True)
    run = train(cfg, corpus, seed=args.seed, batch_size=args.batch_size, store=store, device=device, **budget)
    floor = f"  (entropy floor {run.entropy:.4f})" if run.entropy is not None else ""
    print(f"run    {run.run_id}  status={run.status}{'  (from store)' if run.from_store else ''}")
    print(f"       {run.tokens:,} tokens, {run.flops:.3g} FLOPs, {run.wall_s:.1f} s on {run.device} ({run.precision})")
    print(f"       final validation loss {run.final_val_loss:.4f} nats/token{floor}")
    return 0 if run.status == "ok" else 1


def _device(name: str | None):
    """--device as a torch.device that exists here, checked before anything is loaded or created."""
    from cot_lab.core.device import resolve_device

    try:
        return resolve_device(name)
    except ValueError as error:
        # None is the library's Python default; on the command line the same default is spelled 'auto'
        raise CliError(in_flag_terms(str(error), {"device": "--device"}).replace("'auto' (or None)", "'auto'")) from None


# The shape ladder picks the nearest shape in log-parameters; one 2x or more away means the target is
# outside what it builds, which must be said rather than trained quietly at another size.
SIZE_SLACK = 2.0


def _check_size(target: float, built: int, cfg) -> None:
    if built * SIZE_SLACK < target:
        raise CliError(f"--params {target:g} is more than the largest model the kit builds ({built:,} parameters: "
                       f"d_model {cfg.d_model}, {cfg.n_layer} layers); give --params {built:.2g} or less")
    if built > SIZE_SLACK * target:
        raise CliError(f"--params {target:g} is less than the smallest model the kit builds ({built:,} parameters: "
                       f"d_model {cfg.d_model}, {cfg.n_layer} layer{'s' if cfg.n_layer > 1 else ''}, at this "
                       f"vocabulary); give --params {built:.2g} or more")


def _print_frame(frame) -> None:
    import pandas as pd

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(frame.to_string(index=False))


def _sweep_runs(args):
    """Plan and run the sweep of `args` (profile, optional budgets/sizes); returns (profile, corpus, store, result)."""
    from cot_lab.core.profiles import profile
    from cot_lab.core.executor import default_workers
    from cot_lab.scaling.sweep import isoflop_plan, run_sweep

    prof = profile(args.profile)
    corpus = _load_corpus(args.corpus or prof.sweep_corpus, args.licence)
    if args.tokens_per_param:
        centre = dict(tokens_per_param=args.tokens_per_param)
    else:
        centre = dict(n_opt=prof.sweep_centre) if prof.sweep_centre else dict(tokens_per_param=prof.sweep_tokens_per_param)
    plan = isoflop_plan(args.budgets or prof.sweep_budgets, args.sizes or prof.sweep_sizes, seq_len=prof.seq_len,
                        vocab_size=corpus.vocab_size, **centre)
    seeds = args.seeds or list(prof.sweep_seeds)
    print(f"sweep  profile={prof.name} corpus={corpus.name}: {len(plan)} points x {len(seeds)} seed(s), "
          f"{len(plan.budgets)} budgets, {plan.total_flops * len(seeds):.3g} FLOPs in all")
    store = _store(args.store, create=True)
    result = run_sweep(plan, corpus, store, seeds=seeds, eval_sequences=prof.eval_sequences,
                       workers=args.workers or default_workers())
    return prof, corpus, store, result


def _sweep(args) -> int:
    _, _, store, result = _sweep_runs(args)
    cols = ["budget_flops", "n_params", "d_model", "n_layer", "tokens_per_param", "final_val_loss", "status", "wall_s"]
    _print_frame(result.to_frame()[cols])
    print(f"store  {store.db_path}; sweep took {result.wall_s:.0f} s ({result.train_s:.0f} s of training)")
    return 1 if result.interrupted else 0


def _print_fit(fit) -> None:
    law = fit.approach3
    iv = law.intervals
    print(f"Approach 3 (n={len(fit.points)} points from {fit.n_runs} runs, N = {fit.parameters} parameters): "
          f"L = {law.E:.3f} + {law.A:.4g}/N^{law.alpha:.3f} + {law.B:.4g}/D^{law.beta:.3f}")
    for name in ("E", "alpha", "beta", "a"):
        value = getattr(law, name)
        low, high = iv.get(name, (float("nan"), float("nan")))
        print(f"  {name:<6} {value:.4f}   {100 * (law.confidence or 0):.0f}% interval ({low:.4f}, {high:.4f})")
    if law.n_bootstrap:
        print(f"  {law.n_bootstrap_failed} of {law.n_bootstrap} bootstrap refits failed; seed-to-seed spread of a run "
              f"{fit.seed_sd:.4f} nats/token")
    ev = fit.e_versus_entropy()
    if ev["entropy"] is not None:
        print(f"  floor of the corpus on the scored rows {ev['entropy']:.4f}: {'inside' if ev['inside'] else 'outside'} "
              f"E's interval")
    _print_frame(fit.exponents())
    for note in fit.notes:
        print(note)


def _fit(args) -> int:
    from cot_lab.scaling.sweep_fit import fit_sweep, select_sweep
    from cot_lab.core.results import load_results

    entropy = None
    if args.precomputed:
        shipped = load_results(args.precomputed)
        runs, entropy = shipped["runs"], shipped["manifest"].get("paired_entropy")
        where = f"--precomputed {args.precomputed}"
    else:
        store = _store(args.store, create=False)
        stored = store.runs()
        runs = [r for r in stored if r.corpus == args.corpus]
        where = f"--store {store.root} ({len(runs)} of its {len(stored)} runs on --corpus {args.corpus})"
    kept, left = select_sweep(runs)
    print(f"fitting {len(kept)} runs of one sweep from {where}")
    if left:
        reasons: dict[str, int] = {}
        for _, why in left:
            reasons[why] = reasons.get(why, 0) + 1
        print(f"left out {len(left)} run(s): " + "; ".join(f"{n} x {why}" for why, n in reasons.items()))
    try:
        fit = fit_sweep(kept, bootstrap=args.bootstrap, select=False, entropy=entropy)
    except ValueError as error:
        raise CliError(f"{where}: {in_flag_terms(str(error), _flags_of(args))}") from None
    _print_fit(fit)
    return 0


def _precompute(args) -> int:
    from dataclasses import asdict

    from cot_lab.scaling.sweep_fit import fit_sweep, holdout_prediction, paired_entropy
    from cot_lab.core.results import results_dir, save_results
    from cot_lab.core.training import train_many

    prof, corpus, store, result = _sweep_runs(args)
    if result.interrupted:
        print("precompute: the sweep was interrupted; run the same command again to resume", file=sys.stderr)
        return 1
    entropy = paired_entropy(corpus, prof.eval_sequences, prof.seq_len) if hasattr(corpus, "score") else None
    fit = fit_sweep(result, bootstrap=args.bootstrap, entropy=entropy)
    _print_fit(fit)
    target = prof.holdout_factor * max(r.budget["value"] for r in result.runs)
    pred = holdout_prediction(fit.approach3, target, seq_len=prof.seq_len, vocab_size=corpus.vocab_size)
    seeds = args.seeds or list(prof.sweep_seeds)
    print(f"held-out budget {target:.3g} FLOPs: the law picks {pred['n_params']:,} params, predicts "
          f"{pred['predicted_loss']:.4f} nats/token; training it with seeds {seeds}...", flush=True)
    import time

    start = time.perf_counter()
    runs = train_many(pred["config"], corpus, seeds=seeds, flops=target, batch_size=pred["batch_size"], store=store,
                      eval_sequences=prof.eval_sequences, progress=True)
    holdout_wall_s = time.perf_counter() - start
    if any(r.status != "ok" for r in runs):
        print("precompute: the held-out run did not finish; run the same command again to resume", file=sys.stderr)
        return 1
    loss = float(sum(r.final_val_loss for r in runs) / len(runs))
    error = loss / pred["predicted_loss"] - 1
    print(f"measured {loss:.4f} nats/token (mean of {len(runs)} seeds): prediction error {100 * error:+.2f}%")
    holdout = dict(prediction={**pred, "config": pred["config"].to_dict()}, runs=runs, loss=loss,
                   relative_error=error, fitted_law={k: getattr(fit.approach3, k) for k in ("E", "A", "B", "alpha", "beta")})
    out = save_results(args.out or results_dir(prof.name), result.runs, holdout, profile=prof.name,
                       plan=dict(budgets=sorted({r.budget["value"] for r in result.runs}), sizes=args.sizes or prof.sweep_sizes,
                                 centre=prof.sweep_centre, tokens_per_param=args.tokens_per_param,
                                 corpus=corpus.name, seeds=seeds, profile=asdict(prof)),
                       sweep_wall_s=float(result.wall_s), sweep_train_s=float(result.train_s),
                       sweep_runs_s=float(result.runs_s), holdout_wall_s=holdout_wall_s, paired_entropy=entropy,
                       eval_sequences=prof.eval_sequences, seq_len=prof.seq_len)
    print(f"wrote {out}")
    return 0


def _add_sweep_args(parser) -> None:
    parser.add_argument("--profile", default=None, choices=(*PROFILES, "auto"),
                        help="(default: $COT_LAB_PROFILE, else auto: gpu with CUDA, else laptop)")
    parser.add_argument("--budgets", type=float, nargs="+", help="FLOP budgets (default: the profile's)")
    parser.add_argument("--sizes", type=int, help="model sizes per budget (default: the profile's)")
    parser.add_argument("--tokens-per-param", type=float,
                        help="centre each budget's sizes on this many tokens per parameter (default: the profile's centre)")
    parser.add_argument("--corpus", default=None, help=CORPUS_HELP + " (default: the profile's sweep corpus)")
    parser.add_argument("--licence", default=None, help=LICENCE_HELP)
    parser.add_argument("--store", default=None, help="run store folder, created if missing (default: under $COT_LAB_HOME)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds per point (default: the profile's)")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs side by side (default: one per CPU core without a GPU, else 1)")


def _serve(args) -> int:
    """Serve a registry's champion on 127.0.0.1 until Ctrl-C (fastapi and uvicorn load only for this command)."""
    from pathlib import Path

    from cot_lab.deploy.serving import serve_main

    if not (Path(args.registry).expanduser() / "mlflow.db").is_file():
        raise CliError(f"--registry {args.registry}: no model registry there; make one in Python with "
                       "cl.Registry(path).register(...) and promote a version to champion first")
    return serve_main(args.registry, args.alias, args.port, args.canary)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cot-lab", description="cot-lab: compute-optimal training, by doing it")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="device, measured peak FLOP/s, versions, store path").set_defaults(func=_doctor)
    sv = sub.add_parser("serve", help="serve a model registry's champion over HTTP on 127.0.0.1 (Ctrl-C stops)")
    sv.add_argument("--registry", required=True, help="registry folder (cl.Registry(path))")
    sv.add_argument("--alias", default="champion", help="the alias served (default champion)")
    sv.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0 picks a free one)")
    sv.add_argument("--canary", type=float, default=0.0, help="share of requests sent to the challenger, in [0, 1]")
    sv.set_defaults(func=_serve)
    tr = sub.add_parser("train", help="train one model under a budget")
    tr.add_argument("--params", type=float, default=1e6, help="target model size in parameters (default 1e6)")
    budget = tr.add_mutually_exclusive_group(required=True)
    budget.add_argument("--flops", type=float, help="training FLOPs budget, e.g. 1e12")
    budget.add_argument("--tokens", type=float, help="training tokens budget")
    budget.add_argument("--seconds", type=float, help="wall-clock budget in seconds")
    tr.add_argument("--corpus", default="synthetic", help=CORPUS_HELP)
    tr.add_argument("--licence", default=None, help=LICENCE_HELP)
    tr.add_argument("--seq-len", type=int, default=128)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N, mps")
    tr.add_argument("--no-store", action="store_true",
                    help="do not read or write the run store (by default it is under $COT_LAB_HOME, created if missing)")
    tr.set_defaults(func=_train)
    sw = sub.add_parser("sweep", help="run an IsoFLOP sweep (resumes from the store)")
    _add_sweep_args(sw)
    sw.set_defaults(func=_sweep)
    fi = sub.add_parser("fit", help="fit scaling laws (Approaches 1-3) to stored or shipped runs")
    source = fi.add_mutually_exclusive_group()
    source.add_argument("--store", default=None,
                        help="run store folder that `train` or `sweep` wrote; never created (default: under $COT_LAB_HOME)")
    source.add_argument("--precomputed", default=None, help="fit a shipped result set instead, e.g. laptop")
    fi.add_argument("--corpus", default="synthetic-v3", help="which corpus's runs to fit (stored runs only)")
    fi.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for intervals (default 200)")
    fi.set_defaults(func=_fit)
    pc = sub.add_parser("precompute", help="sweep, fit, train the held-out budget, write cot_lab/precomputed/<profile>/")
    _add_sweep_args(pc)
    pc.add_argument("--out", default=None, help="output folder (default: cot_lab/precomputed/<profile>, inside the package)")
    pc.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for intervals (default 200)")
    pc.set_defaults(func=_precompute)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cot-lab` console script; returns the exit status (2 for a usage error)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit:  # argparse's own errors and --help: their status, here as from any other error
        return exit.code if isinstance(exit.code, int) else 0
    try:
        return args.func(args)
    except CliError as error:
        message = str(error)
    except (ValueError, FileNotFoundError) as error:  # the library's checks name its arguments: name the flags
        message = in_flag_terms(str(error), _flags_of(args))
    print(f"cot-lab {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
