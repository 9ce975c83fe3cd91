"""The scaling law L(N, D) = E + A/N^alpha + B/D^beta and the published laws it is compared with.

    L(N, D) = E + A / N^alpha + B / D^beta        N parameters, D tokens, L nats/token
    C = k N D                                     training FLOPs, k = 6 (Kaplan et al. 2020 Sec. 2.1)

The kit's own sweeps count C as the trainer does (Hoffmann et al. 2022 App. F, 1.3-1.6 x 6N on the ladder),
so every step from C to (N, D) for its own models passes `flops_per_token=` (a function of N); 6ND stays
for the published laws, which were fitted under it.

In `core` because notebooks 01 (a budget's Chinchilla split), 02 (the fits), 04 (lifetime cost) and
05 (wasted compute) all read a law. Sources: Hoffmann et al. 2022 (arXiv 2203.15556, "H22"), Besiroglu
et al. 2024 (Epoch's replication, arXiv 2404.10102), Kaplan et al. 2020 (arXiv 2001.08361).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cot_lab.core.validate import positive_array

PARAMS = ("E", "A", "B", "alpha", "beta")


def check_flops_per_token_per_param(k) -> float:
    """The k of C = k N D (6.0 for forward + backward); ValueError unless positive and finite."""
    k = float(k)
    if not np.isfinite(k) or k <= 0:
        raise ValueError(f"flops_per_token_per_param must be positive (6.0 for C = 6ND); got {k}")
    return k


def check_points(N, D, L) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, D, L) as equal-length 1-D arrays of positive numbers, at least 5 points (a law has 5 parameters)."""
    arrays = []
    for name, v, what in (("N", N, "parameters"), ("D", D, "training tokens"), ("L", L, "loss, nats/token")):
        arr = positive_array(name, v, what)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional; got shape {arr.shape}")
        arrays.append(arr)
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"N, D and L must have the same length; got {[len(a) for a in arrays]}")
    if len(arrays[0]) < 5:
        raise ValueError(f"N, D, L need at least 5 points to fit 5 parameters; got {len(arrays[0])}")
    return tuple(arrays)


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
    n_bootstrap: int = field(default=0, compare=False)         # resamples behind `intervals`
    n_bootstrap_failed: int = field(default=0, compare=False)  # of those, refits that found no solution

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
        N = positive_array("N", N, "parameters")
        D = positive_array("D", D, "training tokens")
        out = self.E + self.A / N**self.alpha + self.B / D**self.beta
        return float(out) if out.ndim == 0 else out

    def optimal(self, C, flops_per_token_per_param: float = 6.0, *, flops_per_token=None):
        """Compute-optimal (N_opt parameters, D_opt tokens) for C training FLOPs.

        By default C = k N D with k = `flops_per_token_per_param` (6: the convention of the published laws,
        H22 eq. 4, closed form). `flops_per_token`, a function of N (FLOPs per training token, e.g.
        `cl.ladder_flops_per_token()`, the trainer's own count along the size ladder), counts C as the
        trainer does instead: D = C / flops_per_token(N), and N_opt minimises L(N, C / flops_per_token(N))
        (no closed form: a bounded 1-D minimisation in log N). Either way the returned pair costs C exactly.
        """
        C = positive_array("C", C, "training FLOPs")
        if flops_per_token is None:
            k = check_flops_per_token_per_param(flops_per_token_per_param)
            n = self.G * (C / k) ** self.a
            d = (C / k) / n  # = G^-1 (C/k)^b, and keeps k N D == C exactly
        else:
            if not callable(flops_per_token):
                raise ValueError("flops_per_token must be a function of N (parameters) returning training FLOPs per "
                                 f"token, e.g. cl.ladder_flops_per_token(); got {type(flops_per_token).__name__}")
            n = np.array([self._optimal_n(float(c), flops_per_token) for c in C.ravel()]).reshape(C.shape)
            d = C / np.vectorize(lambda x: float(flops_per_token(x)))(n)
        return (float(n), float(d)) if n.ndim == 0 else (n, d)

    def _optimal_n(self, C: float, flops_per_token) -> float:
        from scipy.optimize import minimize_scalar

        k0 = float(flops_per_token(1e5)) / 1e5  # the count's FLOPs per token per parameter near the ladder's middle
        guess = np.log(self.G * (C / k0) ** self.a)
        res = minimize_scalar(lambda x: self.E + self.A * np.exp(-self.alpha * x)
                              + self.B * (C / float(flops_per_token(np.exp(x)))) ** -self.beta,
                              bounds=(guess - 6.0, guess + 6.0), method="bounded", options={"xatol": 1e-7})
        return float(np.exp(res.x))

    def optimal_loss(self, C, flops_per_token_per_param: float = 6.0, *, flops_per_token=None):
        """Loss in nats/token of the compute-optimal model at C training FLOPs (counted as `optimal` says)."""
        return self.loss(*self.optimal(C, flops_per_token_per_param, flops_per_token=flops_per_token))

    def tokens_per_param(self, C, flops_per_token_per_param: float = 6.0, *, flops_per_token=None):
        """Compute-optimal D_opt / N_opt (tokens per parameter) at C training FLOPs."""
        n, d = self.optimal(C, flops_per_token_per_param, flops_per_token=flops_per_token)
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

# H22 Table 2: exponent a of N_opt ~ C^a, with the paper's intervals where given (10th-90th percentile).
PUBLISHED_EXPONENTS = {
    "H22 Approach 1": (0.50, (0.488, 0.502)),
    "H22 Approach 2": (0.49, (0.462, 0.534)),
    "H22 Approach 3": (0.46, (0.454, 0.455)),
    "Kaplan 2020": (0.73, None),
    "Epoch 2024 refit": (0.513, None),
}
