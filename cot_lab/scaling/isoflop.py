"""Hoffmann et al. (2022) Approaches 2 (a parabola per IsoFLOP budget) and 1 (the envelope of loss curves).

H22 = arXiv 2203.15556, Sec. 3.1-3.2 and Table 2 (the exponent a of N_opt ~ C^a).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cot_lab.core.law import check_flops_per_token_per_param, check_points
from cot_lab.core.validate import positive_array

# ---------------------------------------------------------------- Approach 2: IsoFLOP parabolas


def _group_budgets(C: np.ndarray) -> list[np.ndarray]:
    """Indices of points sharing a budget; budgets within 1e-6 relative count as equal (float round-off)."""
    order = np.argsort(C, kind="stable")
    groups, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or C[order[i]] > C[order[start]] * (1 + 1e-6):
            groups.append(order[start:i])
            start = i
    return groups


def _parabola_coefficients(logN: np.ndarray, L: np.ndarray, groups: list[np.ndarray]) -> list[np.ndarray]:
    return [np.polyfit(logN[g], L[g], 2) for g in groups]


def _vertices(coefficients) -> np.ndarray:
    """Per budget: vertex log N, loss at the vertex, curvature; NaN vertex where the parabola is not convex."""
    out = []
    for c2, c1, c0 in coefficients:
        if c2 > 0:
            out.append((-c1 / (2 * c2), c0 - c1 * c1 / (4 * c2), c2))
        else:
            out.append((np.nan, np.nan, c2))
    return np.array(out)


def _power_law(logC: np.ndarray, logN: np.ndarray) -> tuple[float, float]:
    a, logk = np.polyfit(logC, logN, 1)
    return float(np.exp(logk)), float(a)


def fit_isoflop_parabolas(N, C, L, *, flops_per_token_per_param: float = 6.0, flops_per_token=None,
                          include_extrapolated: bool = False, bootstrap: int = 0, seed: int = 0,
                          confidence: float = 0.9) -> dict:
    """H22 Approach 2: per FLOP budget, a parabola of loss (nats/token) in log N; then N_opt = k C^a.

    Returns a dict of numpy arrays over budgets -- "C", "N_opt", "D_opt", "L_opt", "curvature", "n_points",
    "convex", "interior" (vertex within the sizes tried), "used" (in the power law) -- and floats "k", "a",
    "b" (= 1 - a). D_opt = C / flops_per_token(N_opt) when `flops_per_token` (a function of N, the count the
    runs were budgeted with, e.g. `cl.ladder_flops_per_token()`) is given, else C / (k N_opt) with
    k = `flops_per_token_per_param` (6: the published convention).

    `bootstrap` > 0: a wild residual bootstrap within each budget (every point kept, its parabola value
    plus its own residual with a random sign, scaled by sqrt(n / (n - 3))), so each budget's vertex moves
    as much as its own scatter allows. "a_interval" is the `confidence` percentile interval of a over the
    resamples that kept every used budget convex with its vertex inside the sizes tried; the others are
    counted in "n_bootstrap_failed" (and reported by `SweepFit`), not hidden.
    """
    N, C, L = check_points(N, C, L)
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer number of resamples; got {bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.9; got {confidence}")
    check_flops_per_token_per_param(flops_per_token_per_param)
    if flops_per_token is not None and not callable(flops_per_token):
        raise ValueError("flops_per_token must be a function of N (training FLOPs per token), e.g. cl.ladder_flops_per_token()")
    groups = _group_budgets(C)
    small = [float(C[g[0]]) for g in groups if len(np.unique(N[g])) < 3]
    if small:
        raise ValueError(f"C: each budget needs >= 3 distinct model sizes N for a parabola; budgets {small} have fewer")
    logN = np.log(N)
    budgets = np.array([C[g].mean() for g in groups])
    coefficients = _parabola_coefficients(logN, L, groups)
    fits = _vertices(coefficients)
    lo = np.array([logN[g].min() for g in groups])
    hi = np.array([logN[g].max() for g in groups])
    convex = np.isfinite(fits[:, 0])
    interior = convex & (fits[:, 0] >= lo) & (fits[:, 0] <= hi)
    used = convex if include_extrapolated else interior
    if used.sum() < 2:
        raise ValueError(f"C: need >= 2 budgets with a convex IsoFLOP parabola whose minimum lies within the sizes "
                         f"tried; got {int(used.sum())} of {len(groups)} (interior={interior.tolist()}). Add sizes "
                         "around the minimum, or pass include_extrapolated=True")
    n_opt = np.exp(fits[:, 0])
    k, a = _power_law(np.log(budgets[used]), fits[used, 0])
    per_token = (np.array([float(flops_per_token(n)) if np.isfinite(n) else np.nan for n in n_opt])
                 if flops_per_token is not None else flops_per_token_per_param * n_opt)
    out = {"C": budgets, "N_opt": n_opt, "D_opt": budgets / per_token, "L_opt": fits[:, 1],
           "curvature": fits[:, 2], "n_points": np.array([len(g) for g in groups]), "convex": convex,
           "interior": interior, "used": used, "k": k, "a": a, "b": 1.0 - a}
    if bootstrap:
        rng = np.random.default_rng(seed)
        used_idx = np.flatnonzero(used)
        fitted = {i: np.polyval(coefficients[i], logN[groups[i]]) for i in used_idx}
        resid = {i: (L[groups[i]] - fitted[i]) * np.sqrt(len(groups[i]) / max(1, len(groups[i]) - 3)) for i in used_idx}
        exps, failed = [], 0
        for _ in range(int(bootstrap)):
            v = []
            for i in used_idx:
                g = groups[i]
                sample = fitted[i] + resid[i] * rng.choice((-1.0, 1.0), len(g))
                v.append(_vertices([np.polyfit(logN[g], sample, 2)])[0, 0])
            v = np.array(v)
            ok = np.isfinite(v) & (include_extrapolated | ((v >= lo[used]) & (v <= hi[used])))
            if not ok.all():
                failed += 1
                continue
            exps.append(_power_law(np.log(budgets[used]), v)[1])
        tail = 50.0 * (1.0 - confidence)
        out["a_interval"] = tuple(float(q) for q in np.percentile(exps, [tail, 100 - tail])) if exps else (np.nan, np.nan)
        out["n_bootstrap"] = int(bootstrap)
        out["n_bootstrap_failed"] = failed
        out["confidence"] = confidence
    return out


# ---------------------------------------------------------------- Approach 1: lower envelope of loss curves


def envelope_frontier(curves: Sequence[tuple[float, Sequence[float], Sequence[float]]], *, n_grid: int = 200) -> dict:
    """H22 Approach 1: lower envelope over runs of loss (nats/token) against FLOPs, and N_opt = k C^a along it.

    `curves` is a sequence of (N parameters, flops array, loss array) per run. Each curve is interpolated
    linearly in log FLOPs on `n_grid` log-spaced budgets spanning where >= 2 runs have data; returns
    "C", "L" (envelope loss), "N" (size of the best run at each budget), "interior" (best run is neither
    the smallest nor the largest; only these enter the fit) and floats "k", "a".
    """
    if int(n_grid) != n_grid or n_grid < 10:
        raise ValueError(f"n_grid must be an integer >= 10 (number of log-spaced budgets, 200 by default); got {n_grid}")
    if len(curves) < 2:
        raise ValueError(f"curves needs >= 2 runs of different sizes as (N, flops, loss); got {len(curves)}")
    sizes, logf, losses = [], [], []
    for i, item in enumerate(curves):
        try:
            n, f, l = item
        except (TypeError, ValueError):
            raise ValueError(f"curves[{i}] must be (N, flops array, loss array); got {type(item).__name__}") from None
        n = float(positive_array(f"curves[{i}] N", n, "parameters"))
        f = positive_array(f"curves[{i}] flops", f, "cumulative training FLOPs")
        l = positive_array(f"curves[{i}] loss", l, "nats/token")
        if f.ndim != 1 or f.shape != l.shape or len(f) < 2 or np.any(np.diff(f) <= 0):
            raise ValueError(f"curves[{i}]: flops and loss must be 1-D, equal length >= 2, flops strictly increasing; "
                             f"got shapes {f.shape}, {l.shape}")
        sizes.append(n)
        logf.append(np.log(f))
        losses.append(l)
    starts = np.sort([lf[0] for lf in logf])
    ends = np.sort([lf[-1] for lf in logf])
    lo, hi = starts[1], ends[-2]  # the span where at least two runs overlap
    if not lo < hi:
        raise ValueError("curves: the runs' FLOP ranges do not overlap, so there is no envelope to compare")
    grid = np.linspace(lo, hi, int(n_grid))
    interp = np.array([np.where((grid >= lf[0]) & (grid <= lf[-1]), np.interp(grid, lf, l), np.inf)
                       for lf, l in zip(logf, losses)])
    best = interp.argmin(0)
    n_env = np.array(sizes)[best]
    # Where the smallest or largest size tried is best, the optimum may lie beyond it: keep those budgets
    # out of the power law (as Approach 2 does with vertices outside the sizes tried).
    interior = (n_env > min(sizes)) & (n_env < max(sizes))
    if len(np.unique(n_env[interior])) < 2:
        raise ValueError("curves: fewer than 2 sizes are best at budgets away from the smallest and largest "
                         "runs; add runs of intermediate size (log-spaced) so the envelope moves between them")
    k, a = _power_law(grid[interior], np.log(n_env[interior]))
    return {"C": np.exp(grid), "L": interp[best, np.arange(len(grid))], "N": n_env, "interior": interior,
            "k": k, "a": a}
