"""The critical batch size, measured directly: optimizer steps to reach a target loss against batch size.

Two definitions, both read off the same (batch, steps) points:

* McCandlish et al. 2018 (arXiv 1812.06162, Eq. 2.11): steps S and examples E = S B to reach a loss trade off
  as (S / S_min - 1)(E / E_min - 1) = 1, i.e. S(B) = S_min (1 + B_crit / B) with B_crit = E_min / S_min. Fitted
  by least squares as S = S_min + E_min / B, a line in 1 / B. Below B_crit a doubled batch nearly halves the
  steps; above it the steps barely fall and the extra examples are wasted compute.
* Zhang et al. 2024 (arXiv 2410.21676, Sec. 2): the critical batch is where the steps exceed perfect (linear)
  scaling from the smallest batch by 20%: S(B) = 1.2 S(B_0) B_0 / B.

Steps to a target come from a run's validation curve (linear between evaluations). A run of a fixed budget
has its own schedule (warm-up and cosine over its own length), so its steps to a target differ from those of
an open-ended run at a constant rate, which the papers use: the notebook says so beside the figures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cot_lab.core import validate

ZHANG_OVERHEAD = 0.2  # 20% more steps than linear scaling (Zhang et al. 2024)


def steps_to_loss(curve, target: float) -> float:
    """Optimizer steps at which a curve [[step, tokens, loss], ...] first reaches `target` (nats/token), linear
    between points; inf if it never does. The first point counts as reached if it is already at or below."""
    target = validate.number("target", target, hint="a loss in nats/token")
    for (s0, _, l0), (s1, _, l1) in zip(curve, curve[1:]):
        if l0 <= target:
            return float(s0)
        if l1 <= target:
            return float(s0 + (s1 - s0) * (l0 - target) / (l0 - l1))
    return float(curve[-1][0]) if curve and curve[-1][2] <= target else math.inf


def fit_step_tradeoff(batch_sizes, steps) -> tuple[float, float]:
    """(S_min, E_min) of McCandlish et al.'s S(B) = S_min + E_min / B, least squares over the finite points."""
    b = validate.positive_array("batch_sizes", batch_sizes, "sequences per step")
    s = np.asarray(steps, float)
    keep = np.isfinite(s)
    if len(b) != len(s) or keep.sum() < 2:
        raise ValueError("fit_step_tradeoff needs at least 2 batch sizes that reached the target, with one step "
                         f"count per batch size (got {len(b)} batch sizes, {int(keep.sum())} finite step counts)")
    design = np.column_stack([np.ones(keep.sum()), 1.0 / b[keep]])
    (s_min, e_min), *_ = np.linalg.lstsq(design, s[keep], rcond=None)
    return float(s_min), float(e_min)


def zhang_critical_batch(batch_sizes, steps, overhead: float = ZHANG_OVERHEAD) -> float:
    """The batch at which steps exceed linear scaling from the smallest batch by `overhead` (0.2: 20%),
    interpolated in log batch between measured points; inf if no measured batch gets there, and the first batch
    that never reached the target if one comes first (an upper bound)."""
    b = validate.positive_array("batch_sizes", batch_sizes, "sequences per step")
    order = np.argsort(b)
    b, s = b[order], np.asarray(steps, float)[order]
    if not math.isfinite(s[0]):
        raise ValueError("the smallest batch never reached the target: no linear scaling to compare with")
    excess = s * b / (s[0] * b[0]) - 1.0  # 0 at the smallest batch; `overhead` at the critical one
    for i in range(1, len(b)):  # excess[i - 1] < overhead here
        if not math.isfinite(s[i]):
            return float(b[i])  # this batch never reached the target: the critical batch lies below it
        if excess[i] >= overhead:
            w = (overhead - excess[i - 1]) / (excess[i] - excess[i - 1])
            return float(math.exp(math.log(b[i - 1]) + w * (math.log(b[i]) - math.log(b[i - 1]))))
    return math.inf


@dataclass(frozen=True)
class CriticalBatch:
    """Steps to `target_loss` at each batch size, and the critical batch both ways (sequences; x seq_len tokens)."""

    target_loss: float       # nats/token
    batch_sizes: tuple       # sequences per step
    steps: tuple             # optimizer steps to the target (inf: never reached)
    s_min: float             # McCandlish's fitted minimum steps
    e_min: float             # McCandlish's fitted minimum examples (sequences)
    zhang: float             # Zhang et al.'s critical batch (sequences)
    seq_len: int

    @property
    def mccandlish(self) -> float:
        """B_crit = E_min / S_min (sequences)."""
        return self.e_min / self.s_min if self.s_min > 0 else math.inf

    @property
    def examples(self) -> tuple:
        """Sequences seen to the target at each batch size: steps x batch."""
        return tuple(s * b for s, b in zip(self.steps, self.batch_sizes))

    def to_frame(self):
        """One row per batch size: steps and tokens to the target, and McCandlish's fitted steps."""
        import pandas as pd

        return pd.DataFrame([dict(batch_size=b, steps=s, tokens=s * b * self.seq_len,
                                  fitted_steps=self.s_min + self.e_min / b)
                             for b, s in zip(self.batch_sizes, self.steps)])


def critical_batch(runs, target_loss: float) -> CriticalBatch:
    """The critical batch from runs that differ in batch size (a `batch_sweep`, or shipped records with
    `val_curve`), at `target_loss` nats/token: every run must reach it except, possibly, the largest batches."""
    runs = sorted(getattr(runs, "runs", runs), key=lambda r: r.hparams["batch_size"])
    if len({r.hparams["batch_size"] for r in runs}) != len(runs) or len(runs) < 3:
        raise ValueError(f"runs must be at least 3 runs of distinct batch sizes (got {len(runs)})")
    seq_lens = {r.config.seq_len for r in runs}
    if len(seq_lens) != 1:
        raise ValueError(f"runs mix sequence lengths {sorted(seq_lens)}; compare batches at one sequence length")
    batches = tuple(int(r.hparams["batch_size"]) for r in runs)
    steps = tuple(steps_to_loss(r.val_curve, target_loss) for r in runs)
    s_min, e_min = fit_step_tradeoff(batches, steps)
    return CriticalBatch(float(target_loss), batches, steps, s_min, e_min, zhang_critical_batch(batches, steps),
                         seq_lens.pop())
