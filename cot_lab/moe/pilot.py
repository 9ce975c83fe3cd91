"""Notebook 06's shipped experiments: dense against MoE at matched FLOPs, and the router under its three knobs.

isoflop  MoE partners of the dense laptop sweep (`precomputed/laptop/`): for four of its ladder rungs at each of
         its budgets (5e11, 1e12, 2e12 FLOPs), `moe_shape(rung, n_experts=8, top_k=2, multiple_of=8)` trained with
         the dense run's batch, learning rate, seeds (0, 1), evaluation rows and language. Only the MLP differs.
router   one shape (d_model 24, 3 layers) at ROUTER_FLOPS with the router watched over training, for experts
         {4, 8, 16} x top_k {1, 2} x balance-loss coefficient {0, 1e-3, 1e-2} (notebook 06's router panel).
timing   training milliseconds per step of each dense / MoE pair, interleaved in one process (the wall-clock match).
serving  weight bytes (all experts) and measured decode tokens/s of each pair.

    python -m cot_lab.moe.pilot run [--store DIR] [--workers 2]   # resumable: finished runs come back from the store
    python -m cot_lab.moe.pilot write [--store DIR] [--out DIR]   # timing + serving, -> precomputed/moe/
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cot_lab.core.config import ModelConfig
from cot_lab.moe.shapes import moe_shape

CORPUS = "synthetic-v3"
N_EXPERTS, TOP_K, MULTIPLE_OF = 8, 2, 8
SEEDS = (0, 1)
EVAL_SEQUENCES = 128           # as the laptop sweep's runs
# the dense rungs (d_model) each budget's MoE partners train: four around the dense sweep's vertex
WINDOWS = {5e11: (16, 24, 32, 40), 1e12: (16, 24, 32, 40), 2e12: (24, 32, 40, 48)}
ROUTER_SHAPE, ROUTER_FLOPS, ROUTER_EVERY = (24, 3), 2.5e11, 100
ROUTER_EXPERTS, ROUTER_TOP_K, ROUTER_COEFS = (4, 8, 16), (1, 2), (0.0, 1e-3, 1e-2)
TIMING_STEPS, TIMING_ROUNDS, TIMING_BATCH = 40, 3, 4
FILES = ("isoflop.json", "router.json", "measured.json")
RERUN = "python -m cot_lab.moe.pilot"


def dense_partners() -> dict[tuple[float, int], dict]:
    """{(budget, d_model): a shipped dense run record of the laptop sweep} for every point of WINDOWS (seed 0)."""
    from cot_lab.core.results import data_root, verified_json

    _, (runs,) = verified_json(data_root() / "laptop", ("runs.json",), "python -m cot_lab.scaling.precompute")
    return {(r["budget"]["value"], r["config"]["d_model"]): r for r in runs
            if r["hparams"]["seed"] == 0 and r["config"]["d_model"] in WINDOWS.get(r["budget"]["value"], ())}


def isoflop_plan():
    """The MoE SweepPlan: each dense partner's MoE shape at its budget, batch and learning rate."""
    from cot_lab.scaling.sweep import SweepPlan, SweepPoint

    points = []
    for (budget, _), record in sorted(dense_partners().items()):
        dense = ModelConfig(**record["config"])
        points.append(SweepPoint(budget, moe_shape(dense, n_experts=N_EXPERTS, top_k=TOP_K, multiple_of=MULTIPLE_OF),
                                 record["hparams"]["batch_size"], record["hparams"]["lr"]))
    return SweepPlan(points)


def router_config(n_experts: int, top_k: int, vocab_size: int = 512) -> ModelConfig:
    d_model, n_layer = ROUTER_SHAPE
    dense = ModelConfig(d_model=d_model, n_layer=n_layer, n_head=max(1, d_model // 16), vocab_size=vocab_size)
    return moe_shape(dense, n_experts=n_experts, top_k=top_k, multiple_of=MULTIPLE_OF)


def _history_path(store, run_id: str) -> Path:
    return Path(store.root) / "router-histories" / f"{run_id}.json"


def train_router_run(corpus, store, n_experts: int, top_k: int, coef: float, *, flops: float = ROUTER_FLOPS,
                     every: int = ROUTER_EVERY, stop=None, callbacks=()) -> tuple:
    """(Run, [router measurement records]) of one router-study run (`flops` FLOPs, the router measured every
    `every` steps); the history is kept beside the store, so a finished run and its history both come back at once
    (a stored run whose history is missing is trained again, watched).
    stop, callbacks: as `cl.train`'s."""
    from cot_lab.core.io import write_json
    from cot_lab.core.plan import plan_run
    from cot_lab.core.recipe import batch_size_for
    from cot_lab.core.training import train
    from cot_lab.moe.callback import RouterCallback

    cfg = router_config(n_experts, top_k, corpus.vocab_size)
    kwargs = dict(flops=flops, batch_size=batch_size_for(flops, cfg.seq_len), aux_loss_coef=coef,
                  eval_sequences=EVAL_SEQUENCES)
    key = plan_run(cfg, corpus, **kwargs).key
    path = _history_path(store, key)
    if not path.exists() and store.get(key) is not None:  # stored without its router history: watch it again
        store.delete(key)
    watcher = RouterCallback(corpus, every=every)
    run = train(cfg, corpus, store=store, callbacks=[watcher, *callbacks], progress=False, stop=stop, **kwargs)
    if watcher.history.records and run.status == "ok":
        write_json(path, [dict(step=s, trained_tokens=t, **stats.to_record()) for s, t, stats in watcher.history.records])
    history = json.loads(path.read_text()) if path.exists() else []
    return run, history


def run_pilot(store, *, workers: int = 2) -> dict:
    """Train the MoE IsoFLOP partners (resumable, `workers` processes), then the router study, into `store`."""
    from cot_lab.data import load_corpus
    from cot_lab.scaling.sweep import run_sweep

    corpus = load_corpus(CORPUS)
    sweep = run_sweep(isoflop_plan(), corpus, store, seeds=list(SEEDS), workers=workers,
                      eval_sequences=EVAL_SEQUENCES)
    router = {}
    for n_experts in ROUTER_EXPERTS:
        for top_k in ROUTER_TOP_K:
            for coef in ROUTER_COEFS:
                router[(n_experts, top_k, coef)] = train_router_run(corpus, store, n_experts, top_k, coef)
                print(f"router study: {n_experts} experts, top-{top_k}, coefficient {coef:g}: done", flush=True)
    return dict(isoflop=sweep.runs, router=router)


def pilot_dir() -> Path:
    from cot_lab.core.results import data_root

    return data_root() / "moe"


def write_pilot(store, out: str | Path | None = None) -> Path:
    """Write the MoE runs, the router study and the measured timing and serving, with a sha256 manifest."""
    from cot_lab.core.io import write_json
    from cot_lab.core.results import hardware_summary, sha256_file, shipped_record
    from cot_lab.core.training import versions
    from cot_lab.moe.measure import measure_pairs

    done = run_pilot(store, workers=1)  # everything from the store once it has run
    partners = dense_partners()
    folder = Path(out) if out else pilot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "isoflop.json", dict(corpus=CORPUS, n_experts=N_EXPERTS, top_k=TOP_K, multiple_of=MULTIPLE_OF,
                                             seeds=SEEDS, windows={f"{b:g}": w for b, w in WINDOWS.items()},
                                             runs=[shipped_record(r) for r in done["isoflop"]]))
    write_json(folder / "router.json", dict(shape=ROUTER_SHAPE, flops=ROUTER_FLOPS, every=ROUTER_EVERY, studies=[
        dict(n_experts=e, top_k=k, aux_loss_coef=c, run=shipped_record(run), history=history)
        for (e, k, c), (run, history) in done["router"].items()]))
    dense = sorted({(r["config"]["d_model"], json.dumps(r["config"], sort_keys=True)) for r in partners.values()})
    pairs = [(ModelConfig(**json.loads(c)), moe_shape(ModelConfig(**json.loads(c)), n_experts=N_EXPERTS, top_k=TOP_K,
                                                      multiple_of=MULTIPLE_OF)) for _, c in dense]
    write_json(folder / "measured.json", measure_pairs(pairs, steps=TIMING_STEPS, rounds=TIMING_ROUNDS,
                                                       batch_size=TIMING_BATCH))
    wall_s = float(sum(r.wall_s for r in done["isoflop"]) + sum(run.wall_s for run, _ in done["router"].values()))
    write_json(folder / "manifest.json", dict(versions=versions(), hardware=hardware_summary(), runs_wall_s=wall_s,
                                              files={name: sha256_file(folder / name) for name in FILES}))
    return folder


def load_moe_pilot(root: str | Path | None = None) -> dict:
    """{"isoflop": [Run] (MoE), "dense": [Run] (their laptop-sweep partners, both seeds), "router": [dict per study:
    n_experts, top_k, aux_loss_coef, run, history (RouterStats records)], "measured": dict, "manifest": dict},
    every file checked against its manifest's sha256."""
    from cot_lab.core.results import data_root, shipped_run, verified_json

    folder = Path(root) if root else pilot_dir()
    manifest, (isoflop, router, measured) = verified_json(folder, FILES, RERUN)
    _, (laptop,) = verified_json(data_root() / "laptop", ("runs.json",), "python -m cot_lab.scaling.precompute")
    windows = {float(b): tuple(w) for b, w in isoflop["windows"].items()}
    dense = [shipped_run(r) for r in laptop if r["config"]["d_model"] in windows.get(r["budget"]["value"], ())]
    studies = [{**s, "run": shipped_run(s["run"])} for s in router["studies"]]
    return dict(isoflop=[shipped_run(r) for r in isoflop["runs"]], dense=dense, router=studies, measured=measured,
                manifest=manifest)


def main(argv=None) -> int:
    from cot_lab.core.results import pilot_cli

    return pilot_cli(argv, RERUN, run_pilot, write_pilot, workers=2)


if __name__ == "__main__":
    sys.exit(main())
