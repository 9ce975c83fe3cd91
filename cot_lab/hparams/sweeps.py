"""Learning-rate and batch-size sweeps at one budget: the runs notebook 05 reads its curves from.

Both are `run_sweep` plans (`cot_lab.scaling.sweep`): resumable through the store, one progress bar with an ETA,
workers side by side. The rates of an LR sweep share a shape, a budget and a batch, so they train as one batched
computation (`cl.train_many`: every weight stacked, every matmul batched): on a 2-core CPU, six rates of the
67K model at 1e12 FLOPs (batch 4) trained in 211 s together against 374 s one by one (1.77x; 1.56x at 1e11 FLOPs,
batch 2), with the same final losses (`benchmarks/lr_sweep_speed.py`). Batches of different sizes cannot share a step, so a batch sweep trains
its runs one by one (or side by side with `workers`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cot_lab.core import validate
from cot_lab.core.config import ModelConfig
from cot_lab.core.recipe import batch_size_for, default_lr
from cot_lab.core.runs import Run
from cot_lab.data.base import Corpus
from cot_lab.scaling.sweep import SweepPlan, SweepPoint, run_sweep


@dataclass
class HparamSweep:
    """The runs of one LR or batch sweep (plan order) and what was varied: "lr" or "batch_size"."""

    varied: str
    runs: list[Run]
    interrupted: bool = False
    wall_s: float = 0.0

    def values(self) -> list[float]:
        """The varied setting of each run (learning rate, or sequences per step)."""
        return [float(r.hparams[self.varied]) for r in self.runs]

    def to_frame(self):
        """One row per run: lr, batch_size, tokens, steps, final_val_loss (nats/token), status, train_s."""
        import pandas as pd

        return pd.DataFrame([dict(lr=r.hparams["lr"], batch_size=r.hparams["batch_size"], tokens=r.tokens,
                                  steps=r.steps, final_val_loss=r.final_val_loss, status=r.status, train_s=r.train_s,
                                  run_id=r.run_id) for r in self.runs])

    def best(self) -> tuple[float, float, bool]:
        """(best setting, loss there, interior): the vertex of a parabola in log(setting) through the lowest
        finished run and its two neighbours; at an end of the grid that end, with interior False."""
        done = [(v, r.final_val_loss) for v, r in zip(self.values(), self.runs)
                if r.status == "ok" and math.isfinite(r.final_val_loss)]
        if len(done) < 3:
            raise ValueError(f"a best {self.varied} needs at least 3 finished runs (have {len(done)})")
        from cot_lab.scaling.recipe_pilot import best_lr  # the recipe pilot's rule, one implementation

        return best_lr([v for v, _ in done], [loss for _, loss in done])


def sweep_grid(name: str, values, *, integer: bool) -> list:
    """`values` checked as a sweep's grid (positive, distinct; integers for batch sizes), sorted; ValueError naming `name`."""
    values = list(values) if hasattr(values, "__iter__") else []
    if not values:
        raise ValueError(f"{name} must be a non-empty list, e.g. {[2, 4, 8] if integer else [1e-3, 3e-3, 1e-2]}")
    checked = [validate.integer(f"{name}[]", v) if integer else validate.number(f"{name}[]", v,
                                                                                hint="a learning rate above 0")
               for v in values]
    if len(set(checked)) != len(checked):
        raise ValueError(f"{name}={values!r} repeats a value; give each once")
    return sorted(checked)


def _check(cfg, corpus, flops) -> float:
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"cfg must be a cl.ModelConfig (got {type(cfg).__name__})")
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus must be a cot_lab corpus from cl.load_corpus(...) (got {type(corpus).__name__})")
    return validate.number("flops", flops, hint="a training budget in FLOPs, e.g. 1e12")


def _check_steps(flops: float, cfg: ModelConfig, batch_size: int) -> None:
    from cot_lab.core.accounting import flops_per_token

    steps = flops / flops_per_token(cfg) // (batch_size * cfg.seq_len)
    if steps < 1:
        most = int(flops / flops_per_token(cfg) // cfg.seq_len)
        raise ValueError(f"batch_size={batch_size} is larger than flops={flops:.3g} allows: the budget buys "
                         f"{most} sequences of {cfg.seq_len} tokens in all; use at most {most}, or a larger budget")


def lr_sweep(cfg: ModelConfig, corpus: Corpus, *, flops: float, lrs, batch_size: int | None = None, seeds=(0,),
             store=None, workers: int = 1, progress: bool = True, stop=None, report=None, **train_kwargs) -> HparamSweep:
    """Train `cfg` for `flops` FLOPs at each peak learning rate of `lrs`; returns an HparamSweep (varied "lr").

    batch_size: sequences per step (None: the kit's budget rule, `batch_size_for`). Finished runs come back from
    `store`; the rates train as one batched group. Other keyword arguments go to `cl.train` (beta2=, ...).
    """
    flops = _check(cfg, corpus, flops)
    rates = sweep_grid("lrs", lrs, integer=False)
    batch = batch_size_for(flops, cfg.seq_len) if batch_size is None else validate.integer("batch_size", batch_size)
    _check_steps(flops, cfg, batch)
    plan = SweepPlan([SweepPoint(flops, cfg, batch, lr) for lr in rates])
    result = run_sweep(plan, corpus, store, seeds=list(seeds), workers=workers, progress=progress, stop=stop,
                       report=report, **train_kwargs)
    return HparamSweep("lr", result.runs, result.interrupted, result.wall_s)


def batch_sweep(cfg: ModelConfig, corpus: Corpus, *, flops: float, batch_sizes, lr: float | None = None, seeds=(0,),
                store=None, workers: int = 1, progress: bool = True, stop=None, report=None,
                **train_kwargs) -> HparamSweep:
    """Train `cfg` for `flops` FLOPs at each batch size of `batch_sizes` (sequences per step), all at one peak
    learning rate (None: the recipe's `default_lr(cfg)`); returns an HparamSweep (varied "batch_size")."""
    flops = _check(cfg, corpus, flops)
    batches = sweep_grid("batch_sizes", batch_sizes, integer=True)
    for b in batches:
        _check_steps(flops, cfg, b)
    rate = default_lr(cfg) if lr is None else validate.number("lr", lr, hint="a learning rate above 0, e.g. 5e-3")
    plan = SweepPlan([SweepPoint(flops, cfg, b, rate) for b in batches])
    result = run_sweep(plan, corpus, store, seeds=list(seeds), workers=workers, progress=progress, stop=stop,
                       report=report, **train_kwargs)
    return HparamSweep("batch_size", result.runs, result.interrupted, result.wall_s)


def loss_at_lr(sweep: HparamSweep, lr: float) -> float:
    """Final validation loss (nats/token) at `lr` read off the sweep: linear in log(lr) between its runs."""
    done = sorted((v, r.final_val_loss) for v, r in zip(sweep.values(), sweep.runs) if r.status == "ok")
    x = np.log([v for v, _ in done])
    lr = validate.number("lr", lr, hint="a learning rate above 0")
    if not x[0] <= math.log(lr) <= x[-1]:
        raise ValueError(f"lr={lr:.3g} is outside the sweep's rates ({done[0][0]:.3g} to {done[-1][0]:.3g})")
    return float(np.interp(math.log(lr), x, [loss for _, loss in done]))
