"""The language pilot: a small IsoFLOP sweep (5 budgets, 1e10-1e12 FLOPs, 3 seeds) that checks a language scales smoothly.

A language is fit for the course's scaling laws when, on a like-for-like ladder (a constant aspect,
d_model = 8 x n_layer, so only size changes), the seeds agree, the best loss per budget bends the
way a power law does (convex in log C, no step), a law fitted on the small budgets predicts the
next one, no run beats the floor and ten times the top budget still helps. `pilot_checks` measures
each of these on a finished pilot; the shipped pilot (`load_pilot`) is what the tests and
notebook 02 read, and each of its runs carries its loss split by skill (`cl.loss_by_skill`).

    python -m cot_lab.scaling.pilot run [--version 3] [--store DIR] [--out DIR]

trains it (about 15 minutes on two CPU cores; a store makes an interrupted pilot resume).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from cot_lab.core.config import ModelConfig
from cot_lab.core.io import write_json
from cot_lab.core.recipe import batch_size_for
from cot_lab.core.results import data_root, hardware_summary, sha256_file, shipped_record

SEQ_LEN = 128
SEEDS = (0, 1, 2)
EVAL_SEQUENCES = 128     # the laptop profile's validation rows behind final_val_loss
SKILL_SEQUENCES = 1024   # validation rows behind each run's loss by skill (131K tokens)
EXTENSION_FACTOR = 10    # the best shape of the top budget is also trained on 10x its budget
# (d_model, n_layer): d_model = 8 n_layer, head size 16 (or the width itself below 32)
LADDER = ((16, 2), (24, 3), (32, 4), (40, 5), (48, 6))
# the ladder shapes each budget trains: those within ~0.2-500 tokens per parameter, so every run gets
# at least 30 optimizer steps and the optimum lies inside (checked on the shipped pilot by the tests)
WINDOWS = {1e10: (0, 3), 3e10: (0, 4), 1e11: (0, 4), 3e11: (1, 5), 1e12: (1, 5)}
TARGETS = dict(seed_spread=0.01, holdout_error=0.02)  # the language issue's targets


def ladder_config(index: int, vocab_size: int = 512) -> ModelConfig:
    """The ladder's shape `index` (0 = smallest)."""
    d_model, n_layer = LADDER[index]
    return ModelConfig(d_model=d_model, n_layer=n_layer, n_head=max(1, d_model // 16), vocab_size=vocab_size,
                       seq_len=SEQ_LEN)


def pilot_plan(vocab_size: int = 512):
    """The pilot's SweepPlan: every budget of WINDOWS with its ladder shapes, batch size by the kit's rule."""
    from cot_lab.scaling.sweep import SweepPlan, SweepPoint

    return SweepPlan([SweepPoint(budget, ladder_config(i, vocab_size), batch_size_for(budget, SEQ_LEN))
                      for budget, (lo, hi) in sorted(WINDOWS.items()) for i in range(lo, hi)])


def _record(run, corpus) -> dict:
    from cot_lab.core.skills import loss_by_skill

    skills = loss_by_skill(run, corpus, n_sequences=SKILL_SEQUENCES).to_dict()
    return {**shipped_record(run), "skills": skills}


def run_pilot(corpus, store, *, workers: int = 2, out: str | Path | None = None, progress: bool = True,
              extension: bool = True) -> Path:
    """Train the pilot on `corpus` into `store` (resumable), split every run's loss by skill, write pilot.json.

    extension: also train the top budget's best shape on EXTENSION_FACTOR times the budget (one run of
    1e13 FLOPs, about as long as the sweep's top budget); without it pilot.json's extension is null.
    """
    from cot_lab.scaling.sweep import SweepPlan, SweepPoint, run_sweep

    plan = pilot_plan(corpus.vocab_size)
    result = run_sweep(plan, corpus, store, seeds=list(SEEDS), workers=workers, progress=progress,
                       eval_sequences=EVAL_SEQUENCES)
    runs = [_record(r, corpus) for r in result.runs]
    top = max(WINDOWS)
    best = min((r for r in runs if r["budget"]["value"] == top), key=lambda r: r["final_val_loss"])
    cfg = ModelConfig(**best["config"])
    budget = top * EXTENSION_FACTOR
    longer, wall_s = None, result.wall_s
    if extension:
        more = run_sweep(SweepPlan([SweepPoint(budget, cfg, batch_size_for(budget, SEQ_LEN))]), corpus, store,
                         seeds=[SEEDS[0]], workers=1, progress=progress, eval_sequences=EVAL_SEQUENCES)
        longer, wall_s = _record(more.runs[0], corpus), wall_s + more.wall_s
    floor, floor_se = corpus.entropy_for(SEQ_LEN)
    folder = Path(out) if out is not None else data_root() / f"pilot-{corpus.name}"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "pilot.json", dict(
        corpus=corpus.name, corpus_fingerprint=corpus.fingerprint, floor=floor, floor_se=floor_se,
        ladder=[list(s) for s in LADDER], windows={f"{b:.0e}": list(w) for b, w in WINDOWS.items()},
        seeds=list(SEEDS), runs=runs, extension=longer, sweep_wall_s=wall_s,
        runs_wall_s=sum(r["wall_s"] for r in runs + ([longer] if longer else [])), hardware=hardware_summary()))
    write_json(folder / "manifest.json", {"files": {"pilot.json": sha256_file(folder / "pilot.json")}})
    return folder


def load_pilot(corpus_name: str = "synthetic-v3", root: str | Path | None = None) -> dict:
    """The shipped pilot of a language (sha256-checked): corpus, floor, runs (records with their skills), extension."""
    folder = (Path(root) if root is not None else data_root()) / f"pilot-{corpus_name}"
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(f"corpus_name={corpus_name!r}: no shipped pilot at {folder}; train one with "
                                f"`python -m cot_lab.scaling.pilot run`")
    manifest = json.loads((folder / "manifest.json").read_text())
    if sha256_file(folder / "pilot.json") != manifest["files"]["pilot.json"]:
        raise ValueError(f"{folder / 'pilot.json'} does not match its manifest's sha256: restore it from git")
    return json.loads((folder / "pilot.json").read_text())


def pilot_frame(pilot: dict):
    """One row per pilot run: budget, d_model, n_layer, n_params, tokens, seed, loss (nats/token)."""
    import pandas as pd

    from cot_lab.core.accounting import count_params

    return pd.DataFrame([dict(budget=r["budget"]["value"], d_model=r["config"]["d_model"],
                              n_layer=r["config"]["n_layer"], n_params=count_params(ModelConfig(**r["config"])).total,
                              tokens=r["tokens"], seed=r["hparams"]["seed"], loss=r["final_val_loss"])
                         for r in pilot["runs"]])


def pilot_runs(pilot: dict) -> list:
    """The pilot's runs as cl.Run records (no models), for the sweep's plots and fits."""
    from cot_lab.core.runs import Run

    runs = [Run.from_record(r) for r in pilot["runs"]]
    for run in runs:
        run.from_store = True
    return runs


def targets_frame(checks: dict):
    """The language targets against what pilots measured: one row per target, one column per pilot.

    checks: {pilot name: pilot_checks(...)}. Fractions are shown in percent of the loss.
    """
    import pandas as pd

    rows = {
        "largest seed spread, % of the loss (target <= 1%)": lambda c: 100 * c["seed_spread"],
        "best loss per budget convex in log C, no step": lambda c: "yes" if c["convex"] else "no",
        "law on the first 3 budgets: error at the 4th, % (target within 2%)": lambda c: 100 * c["holdout_error"],
        "law on the first 4 budgets: error at the 5th, %": lambda c: 100 * c["next_holdout_error"],
        "runs below the floor (target 0)": lambda c: c["below_floor"],
        "10x the top budget lowers the loss by, nats/token (target > 0)": lambda c: c["extension_gain"],
    }
    return pd.DataFrame({name: {row: f(c) for row, f in rows.items()} for name, c in checks.items()})


def pilot_checks(pilot: dict) -> dict:
    """The language targets measured on a pilot (relative quantities are fractions of the loss).

    seed_spread: the largest (max - min) / mean over one point's seeds; best: the best seed-mean
    loss per budget; slopes: d best / d ln C between budgets (each 3x should buy a little less:
    slopes rise); holdout_error: measured / predicted - 1 at the fourth budget of a law
    E + A/N^alpha + B/D^beta fitted to the first three (each point's seed mean), the prediction
    being the law's best over the fourth budget's shapes; next_holdout_error: the same, four to
    fifth; below_floor: runs under the floor; extension_gain: best at the top budget minus the
    loss of its shape at ten times the budget.
    """
    from cot_lab.scaling.fit import fit_scaling_law

    frame = pilot_frame(pilot)
    points = frame.groupby(["budget", "n_params"]).agg(loss=("loss", "mean"), lo=("loss", "min"),
                                                      hi=("loss", "max"), tokens=("tokens", "mean")).reset_index()
    points["spread"] = (points.hi - points.lo) / points.loss
    budgets = sorted(points.budget.unique())
    best = [float(points[points.budget == b].loss.min()) for b in budgets]
    slopes = np.diff(best) / np.diff(np.log(budgets))

    def holdout(k: int) -> float:
        fit = points[points.budget.isin(budgets[:k])]
        law = fit_scaling_law(fit.n_params.to_numpy(float), fit.tokens.to_numpy(float), fit.loss.to_numpy(float))
        nxt = points[points.budget == budgets[k]]
        predicted = float(np.min(law.loss(nxt.n_params.to_numpy(float), nxt.tokens.to_numpy(float))))
        return float(nxt.loss.min()) / predicted - 1

    return dict(seed_spread=float(points.spread.max()), spreads=points, budgets=budgets, best=best,
                slopes=slopes.tolist(), convex=bool(np.all(np.diff(slopes) > 0)),
                holdout_error=holdout(3), next_holdout_error=holdout(4) if len(budgets) > 4 else math.nan,
                below_floor=int((frame.loss < pilot["floor"]).sum()),
                extension_gain=best[-1] - pilot["extension"]["final_val_loss"] if pilot["extension"] else math.nan)


def pilot_centre(pilot: dict) -> tuple[float, float]:
    """(N_opt at 1e12 FLOPs, exponent a) from H22 Approach 2 on a pilot's seed-mean points: where a sweep centres its sizes.

    Only budgets whose parabola has its minimum inside the sizes tried enter (on the shipped synthetic-v3 pilot:
    1e11 and 1e12 FLOPs); the laptop profile's `sweep_centre` is this, from that pilot.
    """
    from cot_lab.scaling.isoflop import fit_isoflop_parabolas

    points = pilot_frame(pilot).groupby(["budget", "n_params"]).loss.mean().reset_index()
    fit = fit_isoflop_parabolas(points.n_params.to_numpy(float), points.budget.to_numpy(float), points.loss.to_numpy(float))
    return float(fit["k"] * 1e12 ** fit["a"]), float(fit["a"])


def skills_by_budget(pilot: dict):
    """The excess loss of each skill (nats/token) of the best run (seed 0) of each budget: a DataFrame budget x skill."""
    import pandas as pd

    frame = pilot_frame(pilot)
    rows = {}
    for budget in sorted(frame.budget.unique()):
        seed0 = [r for r in pilot["runs"] if r["budget"]["value"] == budget and r["hparams"]["seed"] == SEEDS[0]]
        run = min(seed0, key=lambda r: r["final_val_loss"])
        rows[budget] = {s["skill"]: s["excess"] for s in run["skills"]["skills"]}
    return pd.DataFrame(rows).T.rename_axis("budget")


def main(argv=None) -> int:
    import argparse

    from cot_lab.core.runs import RunStore
    from cot_lab.data import load_corpus

    parser = argparse.ArgumentParser(prog="python -m cot_lab.scaling.pilot", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the pilot and write pilot.json")
    run.add_argument("--version", type=int, default=3, help="language version (2 or 3)")
    run.add_argument("--store", default=None, help="run store folder (default: the kit's store)")
    run.add_argument("--out", default=None, help="output folder (default: the package's precomputed/)")
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--no-extension", action="store_true", help="skip the run at 10x the top budget")
    args = parser.parse_args(argv)
    corpus = load_corpus("synthetic", version=args.version)
    folder = run_pilot(corpus, RunStore(args.store) if args.store else RunStore(), workers=args.workers, out=args.out,
                       extension=not args.no_extension)
    print(f"pilot written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
