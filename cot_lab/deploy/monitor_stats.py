"""The serving numbers beside the drift monitor: the PSI and its rule's false alarms, latency percentiles, error rates.

PSI (population stability index) with reference-quantile bins: the reference's (1/bins, ..., (bins-1)/bins)
quantiles (numpy's default, linear) cut the line into `bins` bins, outermost ones open; with r_i and w_i the
shares of reference and window values in bin i,

    PSI = sum_i (w_i - r_i) * ln(w_i / r_i)        (shares below PSI_FLOOR are raised to it: an empty bin
                                                    would make the PSI infinite)

Its bands 0.1 and 0.25 are a convention, not a test. Under no change the PSI is about (1/n + 1/m) times a
chi-squared with bins - 1 degrees of freedom (Yurdakul 2018, "Statistical Properties of Population Stability
Index", Western Michigan University dissertation), so a fixed band false-alarms often on small samples and
rarely on large ones. With 10 bins, the 0.1 rule false-alarms about 85% of the time at 100 samples and 37% at
200 when reference and window are both that size: `psi_false_alarm_rate` measures 0.843 and 0.369 (20,000
trials, seed 0); with a reference of 100,000 samples (the reference distribution almost known) 0.39 and 0.02
(2,000 trials): the cited rates are those of two samples of n each, and even a known reference false-alarms
39% of the time at n = 100.
Calibrate the threshold by permutation or bootstrap on in-distribution data, or use a KS or chi-squared test.
"""
from __future__ import annotations

import numpy as np

from cot_lab.core import validate

PSI_FLOOR = 1e-4              # the smallest bin share the PSI uses (a common choice; it only matters for empty bins)
_VALUES_PER_CHUNK = 20_000_000  # simulated values held at once by psi_false_alarm_rate (160 MB of float64)


def _values(name: str, value, *, at_least: int = 1) -> np.ndarray:
    arr = np.asarray(value, dtype=float).ravel() if not isinstance(value, (str, bytes)) else np.array([])
    if arr.size < at_least or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be at least {at_least} finite number(s); got "
                         f"{arr.size} value(s){'' if np.all(np.isfinite(arr)) else ', some not finite'}")
    return arr


def _psi_rows(reference: np.ndarray, window: np.ndarray, bins: int) -> np.ndarray:
    """The PSI of each row pair: reference [k, n], window [k, m] -> [k] (one definition for psi and the simulation)."""
    edges = np.quantile(reference, np.arange(1, bins) / bins, axis=1).T  # [k, bins - 1]

    def shares(values):  # bin index = number of edges at or below the value (numpy's searchsorted side='right')
        index = (values[:, :, None] >= edges[:, None, :]).sum(axis=2)
        counts = np.stack([(index == b).sum(axis=1) for b in range(bins)], axis=1)
        return np.maximum(counts / values.shape[1], PSI_FLOOR)

    r, w = shares(reference), shares(window)
    return ((w - r) * np.log(w / r)).sum(axis=1)


def psi(reference_values, window_values, bins: int = 10) -> float:
    """The population stability index of `window_values` against `reference_values` (dimensionless, >= 0), with
    `bins` bins at the reference's quantiles; see the module's docstring for the definition and its bands."""
    bins = validate.integer("bins", bins, low=2, hint="e.g. 10 (deciles of the reference)")
    ref = _values("reference_values", reference_values, at_least=bins)
    win = _values("window_values", window_values)
    return float(_psi_rows(ref[None, :], win[None, :], bins)[0])


def psi_false_alarm_rate(n_window: int, *, n_reference: int | None = None, bins: int = 10, threshold: float = 0.1,
                         trials: int = 2000, seed: int = 0) -> float:
    """The share of `trials` no-change comparisons whose PSI exceeds `threshold`: reference (n_reference values,
    default n_window) and window (n_window values) both drawn from one standard normal, seeded. The PSI does not
    depend on the distribution of a continuous variable (its bins are quantiles), so the normal stands for any.
    """
    n_window = validate.integer("n_window", n_window, hint="values in a window, e.g. 100")
    n_reference = n_window if n_reference is None else validate.integer(
        "n_reference", n_reference, hint="values in the reference, e.g. 100 (None: n_window)")
    bins = validate.integer("bins", bins, low=2, hint="e.g. 10")
    if n_reference < bins:
        raise ValueError(f"n_reference={n_reference} must be at least bins={bins} for quantile bins")
    threshold = validate.number("threshold", threshold, hint="the PSI rule's band, e.g. 0.1 or 0.25")
    trials = validate.integer("trials", trials, low=100, hint="simulated comparisons, e.g. 2000")
    seed = validate.integer("seed", seed, low=0)
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _VALUES_PER_CHUNK // ((n_reference + n_window) * bins))
    alarms = 0
    for start in range(0, trials, per_chunk):
        k = min(per_chunk, trials - start)
        values = _psi_rows(rng.standard_normal((k, n_reference)), rng.standard_normal((k, n_window)), bins)
        alarms += int((values > threshold).sum())
    return alarms / trials


def latency_summary(latencies_ms) -> dict:
    """{'p50', 'p90', 'p99', 'mean' (ms), 'n'} of request latencies in milliseconds; percentiles as numpy's
    percentile (linear interpolation between the closest ranks)."""
    arr = _values("latencies_ms", latencies_ms)
    if (arr < 0).any():
        raise ValueError(f"latencies_ms must be non-negative milliseconds; got {arr[arr < 0][:5].tolist()}")
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(arr.mean()), "n": int(arr.size)}


def error_rate(statuses, *, client: bool = False) -> float:
    """The share of requests that failed, from their HTTP status codes (100..599): 5xx (the service failed), or
    with client=True 4xx (a bad request: the caller's fault, counted apart so that one broken client does not
    look like an outage)."""
    arr = np.asarray(statuses).ravel()
    if arr.size == 0 or arr.dtype.kind not in "iu" or arr.min() < 100 or arr.max() > 599:
        raise ValueError("statuses must be a non-empty list of integer HTTP status codes in 100..599, e.g. "
                         "[200, 200, 503]")
    if not isinstance(client, (bool, np.bool_)):
        raise ValueError(f"client={client!r} must be True (4xx share) or False (5xx share)")
    low = 400 if client else 500
    return float(((arr >= low) & (arr < low + 100)).mean())
