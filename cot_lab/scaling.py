"""Scaling-law fits and compute-optimal allocation: Hoffmann et al. (2022) Approaches 1, 2 and 3.

    L(N, D) = E + A / N^alpha + B / D^beta        N parameters, D tokens, L nats/token
    C = 6 N D                                     training FLOPs (Kaplan et al. 2020 Sec. 2.1)

Approach 3 (`fit_scaling_law`) fits the five numbers to (N, D, L) points with the Huber/log-sum-exp
objective of H22 App. D.2, *summed* over points as in the Epoch replication (Besiroglu et al. 2024,
who showed H22's averaged objective let L-BFGS stop early). Approach 2 (`fit_isoflop_parabolas`) fits
a parabola per IsoFLOP budget; Approach 1 (`envelope_frontier`) takes the lower envelope of loss curves.
Sources: REFERENCE.md Sec. 1 (H22 = arXiv 2203.15556, K20 = arXiv 2001.08361, Epoch = arXiv 2404.10102).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

PARAMS = ("E", "A", "B", "alpha", "beta")


def _positive_array(name: str, value, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))] if arr.size else arr
        raise ValueError(f"{name} must be positive and finite ({what}); got {bad[:5].tolist() if arr.size else 'an empty array'}")
    return arr


@dataclass(frozen=True)
class ScalingLaw:
    """L(N, D) = E + A/N^alpha + B/D^beta in nats/token, N parameters, D training tokens."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    source: str = ""
    # Bootstrap percentile intervals keyed by "E", "A", "B", "alpha", "beta", "a", "b"; `confidence` says
    # which (0.9 = 5th to 95th percentile). Samples are not kept, to keep the object small.
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict, compare=False)
    confidence: float | None = None
    standard_errors: dict[str, float] = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in PARAMS:
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0 or (v == 0 and name != "E"):
                raise ValueError(f"ScalingLaw {name} must be finite and > 0 (E may be 0); got {name}={v}")

    @property
    def a(self) -> float:
        """Exponent of N_opt in C: beta / (alpha + beta) (H22 eq. 4)."""
        return self.beta / (self.alpha + self.beta)

    @property
    def b(self) -> float:
        """Exponent of D_opt in C: alpha / (alpha + beta) (H22 eq. 4)."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        """Prefactor of N_opt = G (C/6)^a: (alpha A / (beta B))^(1/(alpha+beta)) (H22 eq. 4)."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def loss(self, N, D):
        """Predicted loss in nats/token for N parameters trained on D tokens (numpy broadcasting)."""
        N = _positive_array("N", N, "parameters")
        D = _positive_array("D", D, "training tokens")
        out = self.E + self.A / N**self.alpha + self.B / D**self.beta
        return float(out) if out.ndim == 0 else out

    def optimal(self, C, flops_per_token_per_param: float = 6.0):
        """Compute-optimal (N_opt parameters, D_opt tokens) for C training FLOPs, with C = k N D (H22 eq. 4, k=6)."""
        C = _positive_array("C", C, "training FLOPs")
        k = _check_flops_per_token_per_param(flops_per_token_per_param)
        n = self.G * (C / k) ** self.a
        d = (C / k) / n  # = G^-1 (C/k)^b, and keeps k N D == C exactly
        return (float(n), float(d)) if n.ndim == 0 else (n, d)

    def optimal_loss(self, C, flops_per_token_per_param: float = 6.0):
        """Loss in nats/token of the compute-optimal model at C training FLOPs."""
        return self.loss(*self.optimal(C, flops_per_token_per_param))

    def tokens_per_param(self, C, flops_per_token_per_param: float = 6.0):
        """Compute-optimal D_opt / N_opt (tokens per parameter) at C training FLOPs."""
        n, d = self.optimal(C, flops_per_token_per_param)
        return d / n


# H22 Approach 3, eq. 10 (App. D.2), as published (rounded). Unrounded TeX values: E=1.6934,
# alpha=0.33917, beta=0.28491. With these, D_opt/N_opt is ~26 at 1e18 FLOPs, ~40 at 1e20 and ~93 at
# 5.9e23: far more tokens per parameter than H22's own Approach 1/2 (~20), the discrepancy Epoch found.
CHINCHILLA = ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28,
                        source="Hoffmann et al. 2022, eq. 10 (arXiv 2203.15556)")

# Besiroglu et al. 2024 refit of H22's data (240 points digitised from Fig. 4, Huber losses summed,
# L-BFGS-B on the H22 grid); standard errors from their 4,000-sample bootstrap. Gives a = 0.513 (SE 0.020).
EPOCH_REPLICATION = ScalingLaw(
    E=1.817, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658,
    source="Besiroglu et al. 2024, Epoch refit (arXiv 2404.10102)",
    standard_errors={"E": 0.026, "A": 124.5, "B": 1293.3, "alpha": 0.015, "beta": 0.021, "a": 0.020},
)

# Kaplan et al. 2020 Sec. 1.2: compute-optimal growth N ~ C^0.73 (and batch ~ C^0.24, steps ~ C^0.03).
KAPLAN_EXPONENT_A = 0.73

# H22 Table 2: exponent a of N_opt ~ C^a, with the paper's intervals where given (10th-90th percentile).
PUBLISHED_EXPONENTS = {
    "H22 Approach 1": (0.50, (0.488, 0.502)),
    "H22 Approach 2": (0.49, (0.462, 0.534)),
    "H22 Approach 3": (0.46, (0.454, 0.455)),
    "Kaplan 2020": (0.73, None),
    "Epoch 2024 refit": (0.513, None),
}


# ---------------------------------------------------------------- Approach 3: Huber fit in log space

# H22 App. D.2 starting grid: alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in {0, 5, ..., 25}.
_GRID = np.array(list(itertools.product(
    np.arange(0, 26, 5.0), np.arange(0, 26, 5.0), np.arange(-1, 1.01, 0.5),
    np.arange(0, 2.01, 0.5), np.arange(0, 2.01, 0.5))))  # columns a, b, e, alpha, beta; 4500 rows


def _huber_lse(theta: np.ndarray, x: np.ndarray, y: np.ndarray, logL: np.ndarray, delta: float, grad: bool):
    """Sum over points of Huber_delta(LSE(a - alpha x, b - beta y, e) - log L) / delta^2, and its gradient.

    theta is (..., 5) = (a, b, e, alpha, beta) with x, y the *centred* log N, log D; a leading batch
    axis evaluates many parameter vectors at once (the starting grid).
    """
    a, b, e, al, be = (theta[..., i, None] for i in range(5))
    t1, t2, t3 = a - al * x, b - be * y, np.broadcast_to(e, np.broadcast_shapes(e.shape, x.shape))
    m = np.maximum(np.maximum(t1, t2), t3)
    w1, w2, w3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
    s = w1 + w2 + w3
    r = m + np.log(s) - logL
    quad = np.abs(r) <= delta
    # Divided by delta^2 (same minimiser): L-BFGS-B's stopping test is absolute for objectives below 1,
    # and the raw Huber sum is ~1e-4 here, so unscaled it stops early (Epoch's finding about H22's mean).
    f = np.where(quad, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta)).sum(-1) / delta**2
    if not grad:
        return f
    g = np.where(quad, r, delta * np.sign(r)) / (s * delta**2)
    g1, g2, g3 = g * w1, g * w2, g * w3
    return f, np.array([g1.sum(), g2.sum(), g3.sum(), -(g1 * x).sum(), -(g2 * y).sum()])


def _lbfgs(theta0: np.ndarray, args) -> tuple[np.ndarray, float]:
    res = minimize(_huber_lse, theta0, args=(*args, True), jac=True, method="L-BFGS-B",
                   options={"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-8})
    return res.x, float(res.fun)


def _best_fit(starts: np.ndarray, args) -> tuple[np.ndarray, float]:
    best, best_f = None, np.inf
    for t0 in starts:
        t, f = _lbfgs(t0, args)
        if np.all(np.isfinite(t)) and f < best_f:
            best, best_f = t, f
        if best_f < 1e-12:  # the objective is >= 0, so an exact fit (noise-free data) is the global minimum
            break
    return best, best_f


def _grid_starts(args, mx: float, my: float, k: int) -> np.ndarray:
    """The k best H22 grid points by objective, moved into centred coordinates a' = a - alpha mean(log N)."""
    grid = _GRID.copy()
    grid[:, 0] -= grid[:, 3] * mx
    grid[:, 1] -= grid[:, 4] * my
    f = _huber_lse(grid, *args, False)
    return grid[np.argsort(f, kind="stable")[:k]]


def _uncentre(t: np.ndarray, mx: float, my: float) -> dict[str, float]:
    a, b, e, al, be = t
    a, b = a + al * mx, b + be * my
    return {"E": np.exp(e), "A": np.exp(a), "B": np.exp(b), "alpha": al, "beta": be,
            "a": be / (al + be), "b": al / (al + be)}


def _check_points(N, D, L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for name, v, what in (("N", N, "parameters"), ("D", D, "training tokens"), ("L", L, "loss, nats/token")):
        arr = _positive_array(name, v, what)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
        arrays.append(arr)
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"N, D and L must have the same length; got {[len(a) for a in arrays]}")
    if len(arrays[0]) < 5:
        raise ValueError(f"N, D, L need at least 5 points to fit 5 parameters; got {len(arrays[0])}")
    return tuple(arrays)


def fit_scaling_law(N, D, L, *, delta: float = 1e-3, bootstrap: int = 0, seed: int = 0,
                    confidence: float = 0.9, n_starts: int = 20) -> ScalingLaw:
    """Fit L = E + A/N^alpha + B/D^beta (nats/token; N params, D tokens) by H22 Approach 3, summed Huber loss.

    The 4500-point H22 grid is scored in one vectorised pass and L-BFGS-B runs from its `n_starts` best
    points: starting from all 4500 took ~250x longer here and, on the laws tested, found the same minimum.
    `bootstrap` > 0 resamples the points with replacement that many times, refits each from the best
    solution plus the best grid point of the resample, and stores `confidence` percentile intervals.
    """
    N, D, L = _check_points(N, D, L)
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive Huber threshold (H22 use 1e-3); got {delta}")
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer number of resamples; got {bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.9 for a 5th-95th percentile interval; got {confidence}")
    if int(n_starts) != n_starts or n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer (20 is the default); got {n_starts}")
    # Centring log N and log D decouples a from alpha (and b from beta), which L-BFGS needs to converge
    # tightly: uncentred, a moves 15 units for every unit of alpha.
    x, y = np.log(N), np.log(D)
    mx, my = float(x.mean()), float(y.mean())
    args = (x - mx, y - my, np.log(L), float(delta))
    best, _ = _best_fit(_grid_starts(args, mx, my, int(n_starts)), args)
    if best is None:
        raise ValueError("N, D, L: L-BFGS-B found no finite solution from any start; check the points span sizes and budgets")
    p = _uncentre(best, mx, my)
    if not (p["alpha"] > 0 and p["beta"] > 0):
        raise ValueError(f"the fit found alpha={p['alpha']:.3g}, beta={p['beta']:.3g}: loss does not fall with both "
                         "N and D in these points; use a wider range of sizes and budgets")

    intervals: dict[str, tuple[float, float]] = {}
    if bootstrap:
        rng = np.random.default_rng(seed)
        samples = {k: [] for k in (*PARAMS, "a", "b")}
        for _ in range(int(bootstrap)):
            idx = rng.integers(0, len(N), len(N))
            bx, by = np.log(N[idx]), np.log(D[idx])
            bmx, bmy = float(bx.mean()), float(by.mean())
            bargs = (bx - bmx, by - bmy, np.log(L[idx]), float(delta))
            warm = best.copy()  # the full-data solution, re-centred on this resample's means
            warm[0] += warm[3] * (mx - bmx)
            warm[1] += warm[4] * (my - bmy)
            t, _ = _best_fit(np.vstack([warm, _grid_starts(bargs, bmx, bmy, 1)]), bargs)
            for k, v in _uncentre(t, bmx, bmy).items():
                samples[k].append(v)
        tail = 50.0 * (1.0 - confidence)
        intervals = {k: tuple(float(q) for q in np.nanpercentile(v, [tail, 100.0 - tail])) for k, v in samples.items()}
    return ScalingLaw(E=float(p["E"]), A=float(p["A"]), B=float(p["B"]), alpha=float(p["alpha"]),
                      beta=float(p["beta"]), source=f"fit_scaling_law on {len(N)} points (H22 Approach 3)",
                      intervals=intervals, confidence=confidence if bootstrap else None)


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


def _parabolas(logN: np.ndarray, L: np.ndarray, groups: list[np.ndarray]):
    """Per budget: vertex log N, loss at the vertex, curvature; NaN vertex where the parabola is not convex."""
    out = []
    for g in groups:
        c2, c1, c0 = np.polyfit(logN[g], L[g], 2)
        if c2 > 0:
            v = -c1 / (2 * c2)
            out.append((v, c0 - c1 * c1 / (4 * c2), c2))
        else:
            out.append((np.nan, np.nan, c2))
    return np.array(out)


def _power_law(logC: np.ndarray, logN: np.ndarray) -> tuple[float, float]:
    a, logk = np.polyfit(logC, logN, 1)
    return float(np.exp(logk)), float(a)


def _check_flops_per_token_per_param(k) -> float:
    """The k of C = k N D (6.0 for forward + backward); ValueError unless positive and finite."""
    k = float(k)
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"flops_per_token_per_param must be positive (6.0 for C = 6ND); got {k}")
    return k


def fit_isoflop_parabolas(N, C, L, *, flops_per_token_per_param: float = 6.0, include_extrapolated: bool = False,
                          bootstrap: int = 0, seed: int = 0, confidence: float = 0.9) -> dict:
    """H22 Approach 2: per FLOP budget, a parabola of loss (nats/token) in log N; then N_opt = k C^a.

    Returns a dict of numpy arrays over budgets -- "C", "N_opt", "D_opt" (= C / (6 N_opt)), "L_opt",
    "curvature", "n_points", "convex", "interior" (vertex within the sizes tried), "used" (in the power
    law) -- and floats "k", "a", "b" (= 1 - a). With `bootstrap` > 0, points are resampled within each
    budget and "a_interval" holds the `confidence` percentile interval of a ("n_bootstrap_failed" counts
    resamples where a used budget lost its interior minimum or had too few distinct sizes).
    """
    N, C, L = _check_points(N, C, L)
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer number of resamples; got {bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.9; got {confidence}")
    _check_flops_per_token_per_param(flops_per_token_per_param)
    groups = _group_budgets(C)
    small = [float(C[g[0]]) for g in groups if len(np.unique(N[g])) < 3]
    if small:
        raise ValueError(f"C: each budget needs >= 3 distinct model sizes N for a parabola; budgets {small} have fewer")
    logN = np.log(N)
    budgets = np.array([C[g].mean() for g in groups])
    fits = _parabolas(logN, L, groups)
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
    out = {"C": budgets, "N_opt": n_opt, "D_opt": budgets / (flops_per_token_per_param * n_opt), "L_opt": fits[:, 1],
           "curvature": fits[:, 2], "n_points": np.array([len(g) for g in groups]), "convex": convex,
           "interior": interior, "used": used, "k": k, "a": a, "b": 1.0 - a}
    if bootstrap:
        rng = np.random.default_rng(seed)
        used_groups = [g for g, u in zip(groups, used) if u]
        exps, failed = [], 0
        for _ in range(int(bootstrap)):
            rs = [rng.choice(g, len(g)) for g in used_groups]
            if any(len(np.unique(N[g])) < 3 for g in rs):
                failed += 1
                continue
            v = _parabolas(logN, L, rs)[:, 0]
            ok = np.isfinite(v) & (include_extrapolated | ((v >= lo[used]) & (v <= hi[used])))
            if not ok.all():
                failed += 1
                continue
            exps.append(_power_law(np.log(budgets[used]), v)[1])
        tail = 50.0 * (1.0 - confidence)
        out["a_interval"] = tuple(float(q) for q in np.percentile(exps, [tail, 100 - tail])) if exps else (np.nan, np.nan)
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
        n = float(_positive_array(f"curves[{i}] N", n, "parameters"))
        f = _positive_array(f"curves[{i}] flops", f, "cumulative training FLOPs")
        l = _positive_array(f"curves[{i}] loss", l, "nats/token")
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
