"""Fit a sweep's runs three ways (H22 Approaches 1, 2, 3) and set the exponents beside the published ones.

Units: N total parameters (tied embeddings counted once), D training tokens, C training FLOPs
(Chinchilla count), losses in nats/token. Only runs with status "ok" enter a fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cot_lab.core import validate
from cot_lab.core.accounting import flops_per_token
from cot_lab.core.runs import Run
from cot_lab.core.law import PUBLISHED_EXPONENTS, ScalingLaw
from cot_lab.scaling.isoflop import envelope_frontier, fit_isoflop_parabolas
from cot_lab.scaling.fit import fit_scaling_law


@dataclass
class SweepFit:
    """The three fits of one sweep. `approach1` / `approach2` are the dicts of `envelope_frontier` /
    `fit_isoflop_parabolas` (None where the runs do not allow that approach, with the reason in `notes`);
    `approach3` is a ScalingLaw with bootstrap intervals."""

    approach1: dict | None
    approach2: dict | None
    approach3: ScalingLaw
    n_runs: int
    budgets: list = field(default_factory=list)  # the distinct FLOP budgets fitted, ascending
    entropy: float | None = None  # the corpus's true floor, nats/token (synthetic corpus only)
    notes: list[str] = field(default_factory=list)

    def exponents(self):
        """A DataFrame of the exponent a (N_opt ~ C^a) with intervals: these fits, then the published values."""
        import pandas as pd

        rows = []
        if self.approach1 is not None:
            rows.append(("this sweep: Approach 1 (envelope)", self.approach1["a"], None))
        if self.approach2 is not None:
            rows.append(("this sweep: Approach 2 (IsoFLOP parabolas)", self.approach2["a"],
                         self.approach2.get("a_interval")))
        law = self.approach3
        rows.append(("this sweep: Approach 3 (parametric fit)", law.a, law.intervals.get("a")))
        rows += [(name, a, interval) for name, (a, interval) in PUBLISHED_EXPONENTS.items()]
        return pd.DataFrame([dict(source=s, a=float(a), a_low=iv[0] if iv else np.nan, a_high=iv[1] if iv else np.nan)
                             for s, a, iv in rows])

    def e_versus_entropy(self) -> dict:
        """Fitted E with its interval beside the corpus's true entropy (nats/token), and whether the interval holds it."""
        low, high = self.approach3.intervals.get("E", (np.nan, np.nan))
        inside = self.entropy is not None and low <= self.entropy <= high
        return dict(E=self.approach3.E, E_low=low, E_high=high, entropy=self.entropy, inside=bool(inside))


def _ok_runs(runs) -> list[Run]:
    runs = list(getattr(runs, "runs", runs))  # a SweepResult or a list of runs
    if not all(isinstance(r, Run) for r in runs):
        raise ValueError("runs must be a SweepResult or a list of cl.Run (e.g. cl.sweep.run_sweep(...).runs)")
    ok = [r for r in runs if r.status == "ok" and np.isfinite(r.final_val_loss)]
    if len(ok) < 5:
        raise ValueError(f"runs: need at least 5 finished runs (status 'ok') to fit; got {len(ok)} of {len(runs)}")
    return ok


def curves(runs) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Per run, (N parameters, cumulative training FLOPs, validation loss) along its evaluations."""
    out = []
    for r in _ok_runs(runs):
        v = np.asarray(r.val_curve, dtype=float)
        out.append((float(r.n_params), v[:, 1] * flops_per_token(r.config), v[:, 2]))
    return out


def fit_sweep(runs, *, bootstrap: int = 200, seed: int = 0, confidence: float = 0.9) -> SweepFit:
    """Fit Approaches 1, 2 and 3 to a sweep's runs; Approaches 2 and 3 with `bootstrap` resamples for intervals."""
    ok = _ok_runs(runs)
    N = np.array([r.n_params for r in ok], dtype=float)
    D = np.array([r.tokens for r in ok], dtype=float)
    C = np.array([r.budget["value"] for r in ok], dtype=float)
    L = np.array([r.final_val_loss for r in ok], dtype=float)
    notes = []
    law = fit_scaling_law(N, D, L, bootstrap=bootstrap, seed=seed, confidence=confidence)
    try:
        approach2 = fit_isoflop_parabolas(N, C, L, bootstrap=bootstrap, seed=seed, confidence=confidence)
    except ValueError as error:
        approach2, notes = None, notes + [f"Approach 2 not fitted: {error}"]
    try:
        approach1 = envelope_frontier(curves(ok))
    except ValueError as error:
        approach1, notes = None, notes + [f"Approach 1 not fitted: {error}"]
    entropies = {r.entropy for r in ok}
    entropy = entropies.pop() if len(entropies) == 1 else None
    return SweepFit(approach1, approach2, law, len(ok), sorted({float(c) for c in C}), entropy, notes)


def holdout_prediction(law: ScalingLaw, flops: float, *, seq_len: int = 128, vocab_size: int = 512) -> dict:
    """The law's best shape on the size ladder for `flops` training FLOPs, and its predicted loss (nats/token).

    Among `size_ladder` shapes, the one whose law.loss(N, flops / flops_per_token) is lowest: the
    FLOPs are counted as the trainer counts them, not as 6ND. Also returns the law's continuous N_opt.
    """
    from cot_lab.core.accounting import count_params
    from cot_lab.core.recipe import batch_size_for
    from cot_lab.core.shapes import size_ladder

    flops = validate.number("flops", flops, hint="a FLOP budget, e.g. 4e13")
    best = None
    for cfg in size_ladder(seq_len, vocab_size):
        n, tokens = count_params(cfg).total, flops / flops_per_token(cfg)
        predicted = float(law.loss(n, tokens))
        if best is None or predicted < best["predicted_loss"]:
            best = dict(config=cfg, n_params=n, tokens=tokens, predicted_loss=predicted)
    best.update(flops=float(flops), batch_size=batch_size_for(flops, seq_len), n_opt_law=float(law.optimal(flops)[0]))
    return best
