"""Hoffmann et al. (2022) Approach 3: fit L = E + A/N^alpha + B/D^beta to (N, D, L) points.

The Huber/log-sum-exp objective of H22 App. D.2 (arXiv 2203.15556), *summed* over points as in the
Epoch replication (Besiroglu et al. 2024, arXiv 2404.10102, who showed H22's averaged objective let
L-BFGS stop early), from H22's starting grid.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import minimize

from cot_lab.core.law import PARAMS, ScalingLaw, check_points

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


# Exponents are kept positive (and below 4) by L-BFGS-B's bounds: a law whose loss rises with N or D is not
# a scaling law, and an unbounded resample can otherwise run off to alpha < 0 and report a meaningless a.
EXPONENT_BOUNDS = (1e-3, 4.0)
_BOUNDS = [(None, None), (None, None), (None, None), EXPONENT_BOUNDS, EXPONENT_BOUNDS]


def _lbfgs(theta0: np.ndarray, args) -> tuple[np.ndarray, float]:
    theta0 = np.array(theta0, dtype=float)
    theta0[3:] = np.clip(theta0[3:], *EXPONENT_BOUNDS)
    res = minimize(_huber_lse, theta0, args=(*args, True), jac=True, method="L-BFGS-B", bounds=_BOUNDS,
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


def fit_scaling_law(N, D, L, *, delta: float = 1e-3, bootstrap: int = 0, seed: int = 0,
                    confidence: float = 0.9, n_starts: int = 20, resample_starts: int = 2) -> ScalingLaw:
    """Fit L = E + A/N^alpha + B/D^beta (nats/token; N params, D tokens) by H22 Approach 3, summed Huber loss.

    The 4500-point H22 grid is scored in one vectorised pass and L-BFGS-B (exponents bounded to
    `EXPONENT_BOUNDS`) runs from its `n_starts` best points: starting from all 4500 took ~250x longer here
    and, on the laws tested, found the same minimum.

    `bootstrap` > 0: a wild residual bootstrap. Each resample keeps every point and multiplies its fitted
    loss by exp(+-r_i), r_i its residual in log L with a random sign, scaled by sqrt(n / (n - 5)) for the
    five fitted parameters; so the noise each point really has (seed noise of a mean of seeds, and misfit)
    is what the intervals carry, point by point, and no (N, D) is dropped or repeated. Each resample is refitted
    from several starts (the full-data solution and the resample's own `resample_starts` best grid points);
    resamples that find no finite solution are counted in `n_bootstrap_failed`, never dropped silently.
    """
    N, D, L = check_points(N, D, L)
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive Huber threshold (H22 use 1e-3); got {delta}")
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"bootstrap must be a non-negative integer number of resamples; got {bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.9 for a 5th-95th percentile interval; got {confidence}")
    if int(n_starts) != n_starts or n_starts < 1:
        raise ValueError(f"n_starts must be a positive integer (20 is the default); got {n_starts}")
    if int(resample_starts) != resample_starts or resample_starts < 1:
        raise ValueError(f"resample_starts must be a positive integer (2 is the default); got {resample_starts}")
    # Centring log N and log D decouples a from alpha (and b from beta), which L-BFGS needs to converge
    # tightly: uncentred, a moves 15 units for every unit of alpha.
    x, y = np.log(N), np.log(D)
    mx, my = float(x.mean()), float(y.mean())
    args = (x - mx, y - my, np.log(L), float(delta))
    best, _ = _best_fit(_grid_starts(args, mx, my, int(n_starts)), args)
    if best is None:
        raise ValueError("N, D, L: L-BFGS-B found no finite solution from any start; check the points span sizes and budgets")
    p = _uncentre(best, mx, my)
    if min(p["alpha"], p["beta"]) <= 1.01 * EXPONENT_BOUNDS[0]:
        raise ValueError(f"the fit found alpha={p['alpha']:.3g}, beta={p['beta']:.3g}: loss does not fall with both "
                         "N and D in these points; use a wider range of sizes and budgets")

    intervals: dict[str, tuple[float, float]] = {}
    failed = 0
    if bootstrap:
        rng = np.random.default_rng(seed)
        fitted = _log_prediction(best, args)
        residual = (np.log(L) - fitted) * np.sqrt(len(L) / max(1, len(L) - 5))
        samples = {k: [] for k in (*PARAMS, "a", "b")}
        for _ in range(int(bootstrap)):
            log_l = fitted + residual * rng.choice((-1.0, 1.0), len(L))
            bargs = (args[0], args[1], log_l, float(delta))
            t, _ = _best_fit(np.vstack([best, _grid_starts(bargs, mx, my, int(resample_starts))]), bargs)
            if t is None:
                failed += 1
                continue
            for k, v in _uncentre(t, mx, my).items():
                samples[k].append(v)
        tail = 50.0 * (1.0 - confidence)
        intervals = {k: tuple(float(q) for q in np.percentile(v, [tail, 100.0 - tail])) if v else (np.nan, np.nan)
                     for k, v in samples.items()}
    return ScalingLaw(E=float(p["E"]), A=float(p["A"]), B=float(p["B"]), alpha=float(p["alpha"]),
                      beta=float(p["beta"]), source=f"fit_scaling_law on {len(N)} points (H22 Approach 3)",
                      intervals=intervals, confidence=confidence if bootstrap else None,
                      n_bootstrap=int(bootstrap), n_bootstrap_failed=failed)


def _log_prediction(theta: np.ndarray, args) -> np.ndarray:
    """log L the centred parameters theta predict at the points of args."""
    a, b, e, al, be = theta
    x, y = args[0], args[1]
    return np.logaddexp(np.logaddexp(a - al * x, b - be * y), e)
