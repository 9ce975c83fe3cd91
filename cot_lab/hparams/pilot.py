"""Notebook 05's shipped experiment: batch sizes against steps to a loss, and B_simple along one run.

At one width of the ladder (d_model 32 x 4 layers, 66,848 parameters, the recipe pilot's middle width) and one
budget (1e12 FLOPs, the recipe pilot's), on notebook 02's language (synthetic-v3, 128 tokens of context):

  batch   batch sizes 1 to 64 sequences, each at 3 learning rates around the square-root rule's rate (Malladi
          et al. 2022, arXiv 2205.10287: for Adam, lr ~ sqrt(batch)), 2x apart, extended 2x beyond an edge until
          each batch's best rate is inside its grid, so that it is found rather than assumed; a batch's steps to
          a target loss are read off its best run's curve;
  noise   one run at the recipe's batch and rate with `NoiseScaleCallback`: B_simple as the loss falls.

    python -m cot_lab.hparams.pilot run [--store DIR] [--workers 2]     # resumable: finished runs come back
    python -m cot_lab.hparams.pilot write [--store DIR] [--out DIR]     # -> precomputed/hparams-pilot/

The learning-rate curves at three widths come from the recipe pilot (`cot_lab.scaling.recipe_pilot`), shipped
with notebook 02; `load_hparams_pilot` returns this set as Runs, sha256-checked against its manifest.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from cot_lab.core.config import ModelConfig
from cot_lab.core.recipe import batch_size_for, default_lr
from cot_lab.core.results import pilot_cli, shipped_run, verified_json

BUDGET = 1e12
SEQ_LEN = 128
CORPUS = "synthetic-v3"
WIDTH = (32, 4)                    # d_model, n_layer
BATCHES = (1, 2, 4, 8, 16, 32, 64)  # sequences per step
LR_FACTORS = (0.5, 1.0, 2.0)       # around the square-root rule's rate for each batch
EVAL_SEQUENCES = 128
NOISE_EVERY = 100                  # optimizer steps between B_simple measurements in the noise run
NOISE_BATCH, NOISE_ACCUMULATE = 4, 8
FILES = ("batch.json", "noise.json")


def pilot_config(vocab_size: int = 512) -> ModelConfig:
    d, n = WIDTH
    return ModelConfig(d_model=d, n_layer=n, n_head=d // 8, vocab_size=vocab_size, seq_len=SEQ_LEN)


def batch_lrs(cfg: ModelConfig, batch: int) -> tuple[float, ...]:
    """The rates a batch is tried at: the recipe's rate at its own batch, scaled by sqrt(batch / that batch)."""
    base = batch_size_for(BUDGET, cfg.seq_len)
    return tuple(default_lr(cfg) * math.sqrt(batch / base) * f for f in LR_FACTORS)


def batch_plan(vocab_size: int = 512):
    """The batch part as one SweepPlan (a batch's rates share shape, budget and batch: one batched group)."""
    from cot_lab.scaling.sweep import SweepPlan, SweepPoint

    cfg = pilot_config(vocab_size)
    return SweepPlan([SweepPoint(BUDGET, cfg, b, lr) for b in BATCHES for lr in batch_lrs(cfg, b)])


def stored_batch_runs(store, vocab_size: int = 512) -> list:
    """The batch part's finished runs in `store`: the planned ones and any edge extensions (`edge_plan`)."""
    cfg = pilot_config(vocab_size)
    return [r for r in store.runs(status="ok") if r.config == cfg and r.budget == {"kind": "flops", "value": BUDGET}
            and r.corpus == CORPUS and r.hparams.get("eval_sequences") == EVAL_SEQUENCES
            and r.hparams.get("batch_size") in BATCHES and r.hparams.get("seed") == 0]


def edge_plan(store, vocab_size: int = 512):
    """One more rate (2x beyond) for every batch whose best stored rate is the lowest or highest it was tried at,
    so that each batch's best rate ends up inside its grid (run again until the plan is empty)."""
    from cot_lab.scaling.sweep import SweepPlan, SweepPoint

    cfg, points = pilot_config(vocab_size), []
    runs = stored_batch_runs(store, vocab_size)
    for b in BATCHES:
        tried = sorted((r.hparams["lr"], r.final_val_loss) for r in runs if r.hparams["batch_size"] == b)
        if len(tried) < 2:
            continue
        best = min(range(len(tried)), key=lambda i: tried[i][1])
        if best == 0:
            points.append(SweepPoint(BUDGET, cfg, b, tried[0][0] / 2))
        elif best == len(tried) - 1:
            points.append(SweepPoint(BUDGET, cfg, b, tried[-1][0] * 2))
    return SweepPlan(points)


def run_pilot(store, *, workers: int = 2) -> None:
    """Train both parts into `store` (the noise history goes to `store.root`/noise.json, written once)."""
    from cot_lab.core.training import train
    from cot_lab.data import load_corpus
    from cot_lab.hparams.noise_scale import NoiseScaleCallback
    from cot_lab.scaling.sweep import run_sweep

    corpus = load_corpus(CORPUS)
    run_sweep(batch_plan(corpus.vocab_size), corpus, store, workers=workers, eval_sequences=EVAL_SEQUENCES)
    for _ in range(3):  # extend every batch's rates until its best one is inside (three rounds at most)
        edges = edge_plan(store, corpus.vocab_size)
        if not len(edges):
            break
        run_sweep(edges, corpus, store, workers=workers, eval_sequences=EVAL_SEQUENCES)
    noise_path = Path(store.root) / "noise.json"
    if not noise_path.is_file():
        hook = NoiseScaleCallback(corpus, every=NOISE_EVERY, batch_size=NOISE_BATCH, accumulate=NOISE_ACCUMULATE)
        # no store: the run itself is the batch part's (same key), and only a live run feeds the hook
        cfg = pilot_config(corpus.vocab_size)
        run = train(cfg, corpus, flops=BUDGET, batch_size=batch_size_for(BUDGET, SEQ_LEN), callbacks=[hook],
                    eval_sequences=EVAL_SEQUENCES)
        from cot_lab.core.io import write_json

        write_json(noise_path, dict(run=run.to_record(), history=hook.frame().to_dict(orient="records"),
                                    every=NOISE_EVERY, batch_size=NOISE_BATCH, accumulate=NOISE_ACCUMULATE))


def pilot_dir() -> Path:
    from cot_lab.core.results import data_root

    return data_root() / "hparams-pilot"


def write_pilot(store, out: str | Path | None = None) -> Path:
    """Write the batch runs (with their validation curves) and the noise history, and a sha256 manifest."""
    from cot_lab.core.io import write_json
    from cot_lab.core.results import hardware_summary, sha256_file, shipped_record
    from cot_lab.core.training import plan_run, versions
    from cot_lab.data import load_corpus

    corpus = load_corpus(CORPUS)
    for p in batch_plan(corpus.vocab_size):
        if store.get(plan_run(p.config, corpus, flops=p.flops, batch_size=p.batch_size, lr=p.lr,
                              eval_sequences=EVAL_SEQUENCES).key, status="ok") is None:
            raise RuntimeError(f"batch {p.batch_size} at lr {p.lr:.3g} is not in {store.root}; run the pilot first")
    stored = sorted(stored_batch_runs(store, corpus.vocab_size), key=lambda r: (r.hparams["batch_size"], r.hparams["lr"]))
    runs = [shipped_record(r) for r in stored]
    noise = json.loads((Path(store.root) / "noise.json").read_text())
    noise["run"] = shipped_record(shipped_run(noise["run"]))
    folder = Path(out) if out else pilot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "batch.json", dict(budget=BUDGET, corpus=CORPUS, width=WIDTH, batches=BATCHES,
                                           lr_factors=LR_FACTORS, runs=runs))
    write_json(folder / "noise.json", noise)
    write_json(folder / "manifest.json", dict(versions=versions(), hardware=hardware_summary(),
                                              runs_wall_s=float(sum(r["wall_s"] for r in runs)),
                                              files={name: sha256_file(folder / name) for name in FILES}))
    return folder


def load_hparams_pilot(root: str | Path | None = None) -> dict:
    """{"batch_runs": [Run], "noise_run": Run, "noise": [dict per measurement], "manifest": dict}, checked."""
    folder = Path(root) if root else pilot_dir()
    manifest, (batch, noise) = verified_json(folder, FILES, "python -m cot_lab.hparams.pilot")
    return dict(batch_runs=[shipped_run(r) for r in batch["runs"]], noise_run=shipped_run(noise["run"]),
                noise=noise["history"], manifest=manifest)


def main(argv=None) -> int:
    return pilot_cli(argv, "python -m cot_lab.hparams.pilot", run_pilot, write_pilot, workers=2)


if __name__ == "__main__":
    sys.exit(main())
