"""Fit a sweep's runs three ways (H22 Approaches 1, 2, 3) with honest intervals, beside the published exponents.

Units: N parameters (total, tied embeddings counted once, or non-embedding: `parameters=`), D training
tokens, C training FLOPs as the trainer counts them (H22 App. F, `flops_per_token(cfg)`), losses in
nats/token. A sweep point is one (budget, shape); its seeds are averaged before any fit, and the spread
between seeds enters the intervals through each point's residual (the bootstraps of `fit_scaling_law`
and `fit_isoflop_parabolas`). Only a homogeneous sweep is fitted (`select_sweep`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cot_lab.core import validate
from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.core.law import PUBLISHED_EXPONENTS, ScalingLaw
from cot_lab.core.runs import Run
from cot_lab.core.shapes import flops_per_token_through
from cot_lab.scaling.fit import fit_scaling_law
from cot_lab.scaling.isoflop import envelope_frontier, fit_isoflop_parabolas

PARAMETER_COUNTS = ("total", "non_embedding")
# What a homogeneous sweep's runs share: the corpus, the context, the precision and the recipe (every
# hyperparameter but the seed, the width-ruled learning rate and the budget-ruled batch).
RECIPE_KEYS = ("warmup", "min_lr_ratio", "weight_decay", "grad_clip", "beta2", "decay_embeddings", "eval_sequences")


def n_of(run_or_cfg, parameters: str = "total") -> int:
    """A run's (or config's) parameter count: "total" or "non_embedding"."""
    if parameters not in PARAMETER_COUNTS:
        raise ValueError(f"parameters={parameters!r}: use one of {PARAMETER_COUNTS}")
    cfg = getattr(run_or_cfg, "config", run_or_cfg)
    counts = count_params(cfg)
    return counts.total if parameters == "total" else counts.non_embedding


def _runs_of(runs) -> list[Run]:
    runs = list(getattr(runs, "runs", runs))  # a SweepResult or a list of runs
    if not all(isinstance(r, Run) for r in runs):
        raise ValueError("runs must be a SweepResult or a list of cl.Run (e.g. cl.sweep.run_sweep(...).runs)")
    return runs


def _recipe(run: Run) -> tuple:
    return (run.corpus_fingerprint if hasattr(run, "corpus_fingerprint") else run.corpus, run.config.seq_len,
            run.precision, tuple(run.hparams.get(k) for k in RECIPE_KEYS), run.budget["kind"])


def select_sweep(runs) -> tuple[list[Run], list[tuple[Run, str]]]:
    """(the runs of one homogeneous IsoFLOP sweep, [(run left out, why)]).

    Kept: finished runs with a FLOP budget that share the corpus fingerprint, context length, precision and
    recipe of the largest such group, trained at the learning rate and batch of the kit's rules (so no pilot or
    panel run with a hand-set rate slips in), at budgets with at least 3 distinct sizes (so a held-out run,
    alone at its budget, is never fitted).
    """
    from cot_lab.core.recipe import batch_size_for, default_lr

    runs = _runs_of(runs)
    left: list[tuple[Run, str]] = []
    ok = []
    for r in runs:
        if r.status != "ok" or not np.isfinite(r.final_val_loss):
            left.append((r, f"status {r.status}"))
        elif r.budget["kind"] != "flops":
            left.append((r, f"a {r.budget['kind']} budget, not FLOPs"))
        elif not np.isclose(r.hparams.get("lr", np.nan), default_lr(r.config), rtol=1e-9):
            left.append((r, f"learning rate {r.hparams.get('lr'):.3g} set by hand (the rule gives {default_lr(r.config):.3g})"))
        elif r.hparams.get("batch_size") != batch_size_for(r.budget["value"], r.config.seq_len):
            left.append((r, f"batch {r.hparams.get('batch_size')} set by hand (the rule gives "
                            f"{batch_size_for(r.budget['value'], r.config.seq_len)})"))
        else:
            ok.append(r)
    groups: dict[tuple, list[Run]] = {}
    for r in ok:
        groups.setdefault(_recipe(r), []).append(r)
    main = max(groups.values(), key=len) if groups else []
    for key, group in groups.items():
        if group is not main:
            left += [(r, "another corpus, context, precision or recipe than the sweep's") for r in group]
    sizes: dict[float, set] = {}
    for r in main:
        sizes.setdefault(float(r.budget["value"]), set()).add(r.n_params)
    kept = []
    for r in main:
        if len(sizes[float(r.budget["value"])]) < 3:
            left.append((r, f"alone at {r.budget['value']:.3g} FLOPs with fewer than 3 sizes (a held-out or panel run)"))
        else:
            kept.append(r)
    return kept, left


def sweep_points(runs, parameters: str = "total"):
    """One row per sweep point (budget, shape): N, D, C, the mean loss over its seeds, their spread and count."""
    import pandas as pd

    rows: dict[tuple, dict] = {}
    for r in _runs_of(runs):
        if r.status != "ok" or not np.isfinite(r.final_val_loss):
            continue
        key = (float(r.budget["value"]), r.config)
        row = rows.setdefault(key, dict(budget_flops=key[0], n_params=r.n_params, n_non_embedding=n_of(r, "non_embedding"),
                                        d_model=r.config.d_model, n_layer=r.config.n_layer, tokens=float(r.tokens),
                                        flops_per_token=flops_per_token(r.config), losses=[], seeds=[]))
        row["losses"].append(float(r.final_val_loss))
        row["seeds"].append(r.hparams.get("seed"))
    out = []
    for row in rows.values():
        losses = np.array(row["losses"])
        out.append({**row, "N": row["n_params"] if parameters == "total" else row["n_non_embedding"],
                    "loss": float(losses.mean()), "seed_sd": float(losses.std(ddof=1)) if len(losses) > 1 else np.nan,
                    "n_seeds": len(losses)})
    return pd.DataFrame(out).sort_values(["budget_flops", "N"]).reset_index(drop=True)


def paired_entropy(corpus, eval_sequences: int, seq_len: int) -> float:
    """The corpus's exact floor (nats/token) on the very validation rows every run is scored on (synthetic only)."""
    return float(np.mean(corpus.score(corpus.val_batch(eval_sequences, seq_len))))


def pooled_seed_sd(points) -> float:
    """The seed-to-seed standard deviation of one run's loss (nats/token), pooled over points with >= 2 seeds."""
    multi = points[points.n_seeds > 1]
    if multi.empty:
        return float("nan")
    return float(np.sqrt((multi.seed_sd ** 2 * (multi.n_seeds - 1)).sum() / (multi.n_seeds - 1).sum()))


def _cost_function(points):
    """Training FLOPs per token as a function of N, through the sweep's own shapes (exact at each of them)."""
    shapes = points.drop_duplicates("N")
    return flops_per_token_through(shapes.N.to_numpy(float), shapes.flops_per_token.to_numpy(float))


@dataclass
class SweepFit:
    """The three fits of one sweep. `approach1` / `approach2` are the dicts of `envelope_frontier` /
    `fit_isoflop_parabolas` (None where the runs do not allow that approach, with the reason in `notes`);
    `approach3` is a ScalingLaw with bootstrap intervals; `leave_one_out` the exponent a refitted without each
    budget in turn; `points` the seed-averaged points fitted; `flops_per_token` the runs' own FLOP count as a
    function of N (what `approach3.optimal(C, flops_per_token=...)` needs)."""

    approach1: dict | None
    approach2: dict | None
    approach3: ScalingLaw
    n_runs: int
    budgets: list = field(default_factory=list)  # the distinct FLOP budgets fitted, ascending
    entropy: float | None = None  # the corpus's floor on the validation rows the runs were scored on, nats/token
    notes: list[str] = field(default_factory=list)
    parameters: str = "total"
    points: object = None
    leave_one_out: object = None
    seed_sd: float = float("nan")
    flops_per_token: object = None

    def exponents(self):
        """A DataFrame of the exponent a (N_opt ~ C^a) with intervals and leave-one-budget-out ranges: these fits,
        then the published values."""
        import pandas as pd

        loo = self.leave_one_out
        rows = []
        if self.approach1 is not None:
            rows.append(("this sweep: Approach 1 (envelope)", self.approach1["a"], None, None))
        if self.approach2 is not None:
            rows.append(("this sweep: Approach 2 (IsoFLOP parabolas)", self.approach2["a"],
                         self.approach2.get("a_interval"), _range(loo, "a_approach2")))
        law = self.approach3
        rows.append(("this sweep: Approach 3 (parametric fit)", law.a, law.intervals.get("a"), _range(loo, "a_approach3")))
        rows += [(name, a, interval, None) for name, (a, interval) in PUBLISHED_EXPONENTS.items()]
        return pd.DataFrame([dict(source=s, a=float(a), a_low=iv[0] if iv else np.nan, a_high=iv[1] if iv else np.nan,
                                  loo_low=r[0] if r else np.nan, loo_high=r[1] if r else np.nan)
                             for s, a, iv, r in rows])

    def e_versus_entropy(self) -> dict:
        """Fitted E with its interval beside the corpus's floor on the scored rows (nats/token), and whether it holds it."""
        low, high = self.approach3.intervals.get("E", (np.nan, np.nan))
        inside = self.entropy is not None and low <= self.entropy <= high
        return dict(E=self.approach3.E, E_low=low, E_high=high, entropy=self.entropy, inside=bool(inside),
                    width=high - low)

    def optimal(self, C):
        """(N_opt, D_opt) of the Approach 3 law at C FLOPs, counted as the runs were (the trainer's count)."""
        return self.approach3.optimal(C, flops_per_token=self.flops_per_token)


def _range(frame, column):
    if frame is None or column not in frame or frame[column].isna().all():
        return None
    return float(frame[column].min()), float(frame[column].max())


def curves(runs, parameters: str = "total") -> list[tuple[float, np.ndarray, np.ndarray]]:
    """Per run, (N parameters, cumulative training FLOPs, validation loss) along its evaluations."""
    out = []
    for r in _runs_of(runs):
        if r.status != "ok":
            continue
        v = np.asarray(r.val_curve, dtype=float)
        out.append((float(n_of(r, parameters)), v[:, 1] * flops_per_token(r.config), v[:, 2]))
    return out


def _approach3(points, **kwargs) -> ScalingLaw:
    return fit_scaling_law(points.N.to_numpy(float), points.tokens.to_numpy(float), points.loss.to_numpy(float), **kwargs)


def _approach2(points, cost, **kwargs) -> dict:
    return fit_isoflop_parabolas(points.N.to_numpy(float), points.budget_flops.to_numpy(float),
                                 points.loss.to_numpy(float), flops_per_token=cost, **kwargs)


def leave_one_budget_out(points, cost=None):
    """The exponent a by Approaches 2 and 3 refitted with each budget left out in turn (NaN where too few remain)."""
    import pandas as pd

    rows = []
    for c in sorted(points.budget_flops.unique()):
        rest = points[points.budget_flops != c]
        row = dict(left_out=float(c), a_approach2=np.nan, a_approach3=np.nan)
        try:
            row["a_approach2"] = _approach2(rest, cost)["a"]
        except ValueError:
            pass
        try:
            row["a_approach3"] = _approach3(rest, n_starts=10).a
        except ValueError:
            pass
        rows.append(row)
    return pd.DataFrame(rows)


def fit_sweep(runs, *, bootstrap: int = 200, seed: int = 0, confidence: float = 0.9, parameters: str = "total",
              entropy: float | None = None, select: bool = True) -> SweepFit:
    """Fit Approaches 1, 2 and 3 to a sweep's runs (seed-averaged), with bootstrap intervals and a leave-one-budget-out
    spread; `parameters` "total" or "non_embedding" is the N of the fits. `entropy`: the corpus's floor on the rows
    the runs were scored on (nats/token; default: the floor recorded in the runs). `select`: fit only the
    homogeneous sweep `select_sweep` keeps, naming what it left out in `notes`."""
    if parameters not in PARAMETER_COUNTS:
        raise ValueError(f"parameters={parameters!r}: use one of {PARAMETER_COUNTS}")
    runs = _runs_of(runs)
    notes = []
    if select:
        runs, left = select_sweep(runs)
        if left:
            notes.append(f"{len(left)} run(s) left out of the fit: " + "; ".join(sorted({why for _, why in left})))
    else:
        runs = [r for r in runs if r.status == "ok" and np.isfinite(r.final_val_loss)]
    if len(runs) < 5:
        raise ValueError(f"runs: need at least 5 finished runs of one sweep (status 'ok') to fit; got {len(runs)}")
    points = sweep_points(runs, parameters)
    if len(points) < 5:
        raise ValueError(f"runs: need at least 5 sweep points (budget, size) to fit 5 parameters; got {len(points)}")
    cost = _cost_function(points)
    law = _approach3(points, bootstrap=bootstrap, seed=seed, confidence=confidence)
    if law.n_bootstrap_failed:
        notes.append(f"Approach 3: {law.n_bootstrap_failed} of {law.n_bootstrap} bootstrap refits found no solution")
    try:
        approach2 = _approach2(points, cost, bootstrap=bootstrap, seed=seed, confidence=confidence)
        if approach2.get("n_bootstrap_failed"):
            notes.append(f"Approach 2: {approach2['n_bootstrap_failed']} of {approach2['n_bootstrap']} resamples lost a "
                         "convex minimum inside the sizes tried; its interval is over the other resamples")
    except ValueError as error:
        approach2, notes = None, notes + [f"Approach 2 not fitted: {error}"]
    try:
        approach1 = envelope_frontier(curves(runs, parameters))
        low, high = law.intervals.get("a", (np.nan, np.nan))
        if np.isfinite(low) and not low <= approach1["a"] <= high:
            notes.append(f"Approach 1's a = {approach1['a']:.2f} lies outside Approach 3's interval ({low:.2f}, {high:.2f}): "
                         "its envelope reads each run part-way through its cosine schedule, where a run planned for that "
                         "smaller budget would have decayed its learning rate and done better, and it can only pick "
                         "among the sizes trained (H22 Approach 1 trains each size with several schedule lengths)")
    except ValueError as error:
        approach1, notes = None, notes + [f"Approach 1 not fitted: {error}"]
    if entropy is None:
        entropies = {r.entropy for r in runs}
        entropy = entropies.pop() if len(entropies) == 1 else None
    return SweepFit(approach1, approach2, law, len(runs), sorted(float(c) for c in points.budget_flops.unique()),
                    entropy, notes, parameters, points, leave_one_budget_out(points, cost), pooled_seed_sd(points), cost)


def holdout_prediction(law: ScalingLaw, flops: float, *, seq_len: int = 128, vocab_size: int = 512,
                       parameters: str = "total") -> dict:
    """The law's best shape on the size ladder for `flops` training FLOPs, and its predicted loss (nats/token).

    Among `size_ladder` shapes, the one whose law.loss(N, flops / flops_per_token(cfg)) is lowest: the
    FLOPs are counted as the trainer counts them, not as 6ND. Also returns the law's continuous N_opt under
    the same count (`n_opt_law`), with N in the law's `parameters` count.
    """
    from cot_lab.core.recipe import batch_size_for
    from cot_lab.core.shapes import size_ladder

    flops = validate.number("flops", flops, hint="a FLOP budget, e.g. 4e13")
    ladder = size_ladder(seq_len, vocab_size)
    best = None
    for cfg in ladder:
        n, tokens = n_of(cfg, parameters), flops / flops_per_token(cfg)
        predicted = float(law.loss(n, tokens))
        if best is None or predicted < best["predicted_loss"]:
            best = dict(config=cfg, n_params=count_params(cfg).total, n=n, tokens=tokens, predicted_loss=predicted)
    cost = flops_per_token_through([n_of(c, parameters) for c in ladder], [flops_per_token(c) for c in ladder])
    n_opt = law.optimal(flops, flops_per_token=cost)[0]
    best.update(flops=float(flops), batch_size=batch_size_for(flops, seq_len), n_opt_law=float(n_opt))
    return best
