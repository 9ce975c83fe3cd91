"""The recipe pilot: the learning rate, AdamW's beta2 and the batch size the sweep trains with, measured.

Three grids at the middle of the sweep's budgets (1e12 FLOPs, seed 0, synthetic-v3):
  lr      the learning rate at three widths of the ladder (d_model 24, 32, 48), 6 rates 2x apart, with
          beta2 0.95 and 0.99 at the sweep's batch (4 sequences of 128 tokens);
  batch   at d_model 32, batches of 2, 8 and 16 sequences (4 is in the lr grid) with the beta2 the lr grid
          chose, each with 4 rates 2x apart around the width rule's rate scaled by sqrt(batch / 4): the rate
          re-tuned per batch, so that batch and rate are not confounded.
`fit_recipe` reads off each curve's best rate (a parabola in log rate through the best point and its two
neighbours) and fits lr* = c (d_model / 32)^-p across widths; `core/recipe.py` holds the fitted constants
and a test refits them from the shipped `precomputed/recipe-pilot/pilot.json`.

Why these are pilots and not defaults from the literature: at 256-token batches and a few thousand steps
the usual values do not carry over. Porian et al. 2024 (arXiv 2406.19146, Sec. 4-5) find that beta2 = 0.95
is too low at small batches (they use 0.99 there) and that the learning rate and batch must be tuned per
scale for the Kaplan and Chinchilla laws to agree; Bi et al. 2024 (DeepSeek LLM, arXiv 2401.02954, Sec. 3.1)
fit the optimal rate and batch as power laws of compute from exactly such grids.

    python -m cot_lab.scaling.recipe_pilot run --part lr|batch|edges [--store DIR]
    python -m cot_lab.scaling.recipe_pilot write [--store DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from cot_lab.core.config import ModelConfig

BUDGET = 1e12
SEQ_LEN = 128
SEED = 0
EVAL_SEQUENCES = 128
CORPUS = "synthetic-v3"
WIDTHS = ((24, 3), (32, 4), (48, 6))   # (d_model, n_layer): ladder rungs of aspect 8, head size 8
LRS = (2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2, 8e-2)
RATES = (1.25e-3,) + LRS + (1.6e-1,)    # where a curve whose best rate is at its grid's edge is extended to
BETA2S = (0.95, 0.99)
SWEEP_BATCH = 4                        # sequences per step the sweep's batch rule gives at 1e12 FLOPs
BATCHES = (2, 4, 8, 16)
BATCH_WIDTH = (32, 4)
# Batches whose best losses differ by less than this are a tie (nats/token): about the spread of three seeds of
# one point at 1e12 FLOPs in the shipped language pilot (0.004-0.005). A tie goes to the larger batch: as good,
# in half the optimizer steps.
BATCH_TOLERANCE = 0.005


def _config(d_model: int, n_layer: int, vocab_size: int = 512) -> ModelConfig:
    return ModelConfig(d_model=d_model, n_layer=n_layer, n_head=d_model // 8, vocab_size=vocab_size, seq_len=SEQ_LEN)


def pilot_groups(part: str, vocab_size: int = 512, beta2: float | None = None) -> list[tuple]:
    """The pilot's groups as (SweepPoint, learning rates, extra train kwargs); `part` is "lr" or "batch".

    The batch part trains with `beta2` (default: the recipe's BETA2, chosen from the lr part)."""
    from cot_lab.core.recipe import BETA2
    from cot_lab.scaling.sweep import SweepPoint

    if part == "lr":
        return [(SweepPoint(BUDGET, _config(d, n, vocab_size), SWEEP_BATCH), LRS, {"beta2": b2})
                for b2 in BETA2S for d, n in WIDTHS]
    if part == "batch":
        b2 = BETA2 if beta2 is None else beta2
        cfg = _config(*BATCH_WIDTH, vocab_size)
        return [(SweepPoint(BUDGET, cfg, batch), batch_lrs(cfg, batch), {"beta2": b2})
                for batch in BATCHES if batch != SWEEP_BATCH]
    raise ValueError(f"part={part!r} is not a part of the recipe pilot; use 'lr' or 'batch'")


def batch_lrs(cfg, batch: int, count: int = 4) -> tuple[float, ...]:
    """`count` consecutive rates of LRS centred on the width rule's rate scaled by sqrt(batch / SWEEP_BATCH) (the
    square-root rule for Adam, Malladi et al. 2022, arXiv 2205.10287): a grid that moves with the batch."""
    from cot_lab.core.recipe import default_lr

    centre = math.log(default_lr(cfg) * math.sqrt(batch / SWEEP_BATCH))
    nearest = min(range(len(LRS)), key=lambda i: abs(math.log(LRS[i]) - centre))
    first = min(max(0, nearest - (count - 1) // 2), len(LRS) - count)
    return LRS[first:first + count]


def run_part(part: str, corpus, store, *, workers: int = 2) -> None:
    """Train one part of the pilot into `store` (resumable: finished runs come back at once)."""
    from cot_lab.core.executor import run_parallel

    groups = pilot_groups(part, corpus.vocab_size) if part != "edges" else edge_groups(store, corpus.vocab_size)
    tasks, job = [], 0
    for point, lrs, extra in groups:
        members = [(job + i, SEED, lr) for i, lr in enumerate(lrs)]
        job += len(lrs)
        tasks.append((point, members, extra))
    done = []

    def on_done(j, run_id, from_store):
        run = store.get(run_id)
        done.append(run)
        print(f"{len(done)}/{job} d{run.config.d_model} batch {run.hparams['batch_size']} lr {run.hparams['lr']:.3g} "
              f"beta2 {run.hparams['beta2']}: {run.final_val_loss:.4f}", flush=True)

    run_parallel(tasks, corpus, store, workers, {"eval_sequences": EVAL_SEQUENCES}, on_done)


def edge_groups(store, vocab_size: int = 512) -> list[tuple]:
    """Groups that extend each curve whose best rate sits at an edge of the rates tried: the next rate of RATES
    beyond that edge (so every curve ends up a U with its minimum inside, or at the end of RATES)."""
    from cot_lab.scaling.sweep import SweepPoint

    groups, rows = [], pilot_runs(store)
    for curve in curves_frame(rows).itertuples():
        if curve.interior:
            continue
        tried = sorted(r["lr"] for r in rows if (r["d_model"], r["batch_size"], r["beta2"])
                       == (curve.d_model, curve.batch_size, curve.beta2))
        i = RATES.index(curve.best_lr)
        beyond = i - 1 if curve.best_lr == tried[0] else i + 1
        if 0 <= beyond < len(RATES) and RATES[beyond] not in tried:
            groups.append((SweepPoint(BUDGET, _config(curve.d_model, curve.n_layer, vocab_size), int(curve.batch_size)),
                           (RATES[beyond],), {"beta2": float(curve.beta2)}))
    return groups


def pilot_runs(store) -> list[dict]:
    """The pilot's finished runs in `store` as flat rows: d_model, n_layer, batch, lr, beta2, loss (nats/token)."""
    rows = []
    for r in store.runs(status="ok"):
        h = r.hparams
        if r.budget != {"kind": "flops", "value": BUDGET} or r.corpus != CORPUS or h.get("seed") != SEED:
            continue
        shape = (r.config.d_model, r.config.n_layer)
        if shape not in WIDTHS or h["lr"] not in RATES or "beta2" not in h:
            continue
        rows.append(dict(d_model=shape[0], n_layer=shape[1], n_params=r.n_params, batch_size=h["batch_size"],
                         lr=h["lr"], beta2=h["beta2"], final_val_loss=float(r.final_val_loss), run_id=r.run_id,
                         wall_s=float(r.wall_s)))
    return rows


def best_lr(lrs, losses) -> tuple[float, float, bool]:
    """(best learning rate, loss there, interior) from one curve: the vertex of a parabola in log lr through the
    lowest point and its two neighbours; at an end of the grid the end point itself, with interior False."""
    lrs, losses = np.asarray(lrs, float), np.asarray(losses, float)
    order = np.argsort(lrs)
    lrs, losses = lrs[order], losses[order]
    i = int(np.nanargmin(losses))
    if i == 0 or i == len(lrs) - 1:
        return float(lrs[i]), float(losses[i]), False
    x = np.log(lrs[i - 1:i + 2])
    c2, c1, c0 = np.polyfit(x, losses[i - 1:i + 2], 2)
    v = -c1 / (2 * c2)
    return float(np.exp(v)), float(c0 - c1 * c1 / (4 * c2)), True


def curves_frame(rows):
    """One row per pilot curve (width, batch, beta2): its best lr, the loss there and whether the U is interior."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    out = []
    for (d, n, batch, b2), g in frame.groupby(["d_model", "n_layer", "batch_size", "beta2"]):
        lr, loss, interior = best_lr(g["lr"], g["final_val_loss"])
        out.append(dict(d_model=d, n_layer=n, batch_size=batch, beta2=b2, best_lr=lr, best_loss=loss,
                        interior=interior, n_lrs=len(g), grid_best_loss=float(g["final_val_loss"].min())))
    return pd.DataFrame(out)


def fit_width_rule(d_models, best_lrs) -> tuple[float, float]:
    """(lr at d_model 32, exponent p) of lr* = c (d_model / 32)^-p, least squares in log-log."""
    slope, intercept = np.polyfit(np.log(np.asarray(d_models, float) / 32.0), np.log(np.asarray(best_lrs, float)), 1)
    return float(np.exp(intercept)), float(-slope)


def fit_recipe(pilot: dict) -> dict:
    """From a shipped pilot (`load_recipe_pilot()`): the beta2 that wins, the width rule at that beta2 and batch,
    and the best batch with its re-tuned rate (the largest batch within BATCH_TOLERANCE of the lowest loss)."""
    curves = curves_frame(pilot["runs"])
    sweep = curves[curves.batch_size == SWEEP_BATCH]
    by_beta2 = sweep.groupby("beta2")["best_loss"].mean()
    beta2 = float(by_beta2.idxmin())
    widths = sweep[sweep.beta2 == beta2].sort_values("d_model")
    lr_at_32, exponent = fit_width_rule(widths.d_model, widths.best_lr)
    batches = curves[(curves.d_model == BATCH_WIDTH[0]) & (curves.beta2 == beta2)].sort_values("batch_size")
    tied = batches[batches.best_loss <= batches.best_loss.min() + BATCH_TOLERANCE]
    best_batch = tied.iloc[-1]
    return dict(beta2=beta2, beta2_gain=float(by_beta2.max() - by_beta2.min()), lr_at_d32=lr_at_32,
                lr_width_exponent=exponent, best_batch=int(best_batch.batch_size), best_batch_lr=float(best_batch.best_lr),
                curves=curves)


def pilot_dir() -> Path:
    from cot_lab.core.results import data_root

    return data_root() / "recipe-pilot"


def write_pilot(store, out: str | Path | None = None) -> Path:
    """Write the pilot's runs (flat rows, no curves) and the hardware to `out`/pilot.json with a sha256 manifest."""
    from cot_lab.core.io import write_json
    from cot_lab.core.results import hardware_summary, sha256_file

    rows = pilot_runs(store)
    folder = Path(out) if out else pilot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "pilot.json", dict(budget=BUDGET, seed=SEED, corpus=CORPUS, eval_sequences=EVAL_SEQUENCES,
                                           widths=WIDTHS, lrs=LRS, beta2s=BETA2S, batches=BATCHES,
                                           runs=sorted(rows, key=lambda r: (r["batch_size"], r["beta2"], r["d_model"], r["lr"])),
                                           runs_wall_s=float(sum(r["wall_s"] for r in rows)),
                                           hardware=hardware_summary()))
    write_json(folder / "manifest.json", {"files": {"pilot.json": sha256_file(folder / "pilot.json")}})
    return folder


def load_recipe_pilot(root: str | Path | None = None) -> dict:
    """The shipped recipe pilot (sha256-checked against its manifest)."""
    from cot_lab.core.results import sha256_file

    folder = Path(root) if root else pilot_dir()
    manifest = json.loads((folder / "manifest.json").read_text())
    if sha256_file(folder / "pilot.json") != manifest["files"]["pilot.json"]:
        raise ValueError(f"{folder / 'pilot.json'} does not match its manifest's sha256; reinstall cot-lab or rerun the pilot")
    return json.loads((folder / "pilot.json").read_text())


def main(argv=None) -> int:
    from cot_lab.core.runs import RunStore
    from cot_lab.data import load_corpus

    parser = argparse.ArgumentParser(prog="python -m cot_lab.scaling.recipe_pilot")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--part", choices=("lr", "batch", "edges"), required=True,
                     help="edges: one more rate beyond the edge of every curve whose best rate is at an edge")
    run.add_argument("--store", default=None)
    run.add_argument("--workers", type=int, default=2)
    write = sub.add_parser("write")
    write.add_argument("--store", default=None)
    write.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    store = RunStore(args.store) if args.store else RunStore()
    if args.command == "run":
        run_part(args.part, load_corpus(CORPUS), store, workers=args.workers)
    else:
        print(f"wrote {write_pilot(store, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
