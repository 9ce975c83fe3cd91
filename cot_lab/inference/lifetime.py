"""The lifetime-optimal model: fewest training + inference FLOPs for a target loss (Sardana et al. 2024).

Sardana, Portes, Doubov & Frankle, "Beyond Chinchilla-Optimal: Accounting for Inference in Language Model
Scaling Laws" (arXiv 2401.00448, ICML 2024), section "Computational Optimality": a model that will serve
D_inf tokens should be chosen to minimise its lifetime FLOPs, not its training FLOPs,

    minimise    6 N D_tr + 2 N D_inf            (6N FLOPs per training token, 2N per inference token)
    subject to  L(N, D_tr) = E + A/N^alpha + B/D_tr^beta = loss

With D_inf = 0 this is the Chinchilla optimum for that loss (Hoffmann et al. 2022, arXiv 2203.15556, eq. 4);
with D_inf > 0 the answer is a smaller model trained on more tokens, and it has no closed form.

Derivation of the condition solved below (a Lagrange multiplier lam on the constraint):
    d/dN:  6 D + 2 T = lam alpha A N^-(alpha+1)       d/dD:  6 N = lam beta B D^-(beta+1)
Dividing the first by the second gives  A N^-alpha = (beta B / alpha) (D + T/3) D^-(beta+1),
and putting that into the constraint leaves one equation in D alone:
    h(D) = (B + beta B/alpha) D^-beta + (T beta B / (3 alpha)) D^-(beta+1) + E - loss = 0,
then N = (A / (loss - E - B D^-beta))^(1/alpha). These are the constants of the authors' code (repo
nikhilsardana/beyond-chinchilla, model_calculator.py, `compute_optimal_train_tokens`). h falls strictly
from +inf to E - loss < 0 as D grows, so the root is unique, and we bracket it (in log D) before solving.

Counted as the kit's trainer counts (a function N -> training FLOPs per token, Hoffmann et al. App. F), the
FLOPs are not proportional to N and the condition above no longer holds: then the lifetime FLOPs are
minimised numerically over N along the iso-loss curve D(N) = (B / (loss - E - A/N^alpha))^(1/beta).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cot_lab.core import validate
from cot_lab.core.law import ScalingLaw

# Sardana et al., "Computational Optimality": training costs 6N FLOPs per token (forward + backward, Kaplan
# et al. 2020 Sec. 2.1), inference 2N (forward only), so a served token costs a third of a trained one.
TRAIN_FLOPS_PER_PARAM = 6.0
INFERENCE_FLOPS_PER_PARAM = 2.0


@dataclass(frozen=True)
class LifetimeOptimum:
    """The model with the fewest lifetime FLOPs for a loss, beside the Chinchilla-optimal model for that loss.

    Parameters in n_params, tokens in *_tokens, FLOPs in *_flops; the loss in nats/token. `flop_convention` is
    "6N/2N" (Sardana et al.'s count) or "trainer" (the FLOPs-per-token function passed in, inference at a third).
    The Chinchilla model is the training-compute-optimal one (zero inference) for the same loss, and its
    lifetime FLOPs include serving the same `inference_tokens`.
    """
    loss: float
    inference_tokens: float
    n_params: float
    train_tokens: float
    train_flops: float
    inference_flops: float
    chinchilla_n_params: float
    chinchilla_train_tokens: float
    chinchilla_train_flops: float
    chinchilla_inference_flops: float
    flop_convention: str

    @property
    def lifetime_flops(self) -> float:
        """Training + inference FLOPs of the lifetime-optimal model."""
        return self.train_flops + self.inference_flops

    @property
    def chinchilla_lifetime_flops(self) -> float:
        """Training + inference FLOPs of the Chinchilla-optimal model serving the same tokens."""
        return self.chinchilla_train_flops + self.chinchilla_inference_flops

    @property
    def tokens_per_param(self) -> float:
        """Training tokens per parameter of the lifetime-optimal model."""
        return self.train_tokens / self.n_params

    @property
    def n_ratio(self) -> float:
        """Parameters of the lifetime-optimal model / parameters of the Chinchilla model (<= 1)."""
        return self.n_params / self.chinchilla_n_params

    @property
    def tokens_ratio(self) -> float:
        """Training tokens of the lifetime-optimal model / training tokens of the Chinchilla model (>= 1)."""
        return self.train_tokens / self.chinchilla_train_tokens

    @property
    def flops_ratio(self) -> float:
        """Lifetime FLOPs of the lifetime-optimal model / lifetime FLOPs of the Chinchilla model (<= 1)."""
        return self.lifetime_flops / self.chinchilla_lifetime_flops

    @property
    def flops_saved(self) -> float:
        """Lifetime FLOPs saved by training the lifetime-optimal model instead of the Chinchilla one."""
        return self.chinchilla_lifetime_flops - self.lifetime_flops

    def __str__(self) -> str:
        return (f"loss {self.loss:.4g} with {self.inference_tokens:.3g} inference tokens ({self.flop_convention}): "
                f"{self.n_params:.4g} params on {self.train_tokens:.4g} tokens, {self.lifetime_flops:.4g} lifetime "
                f"FLOPs; Chinchilla {self.chinchilla_n_params:.4g} on {self.chinchilla_train_tokens:.4g} "
                f"(N x{self.n_ratio:.3f}, D x{self.tokens_ratio:.3f}, lifetime FLOPs x{self.flops_ratio:.3f})")


# -----------------------------------------------------------------------------
# checks at the boundary

def check_law(law) -> ScalingLaw:
    """`law` if it is a ScalingLaw; ValueError saying what would work otherwise."""
    if not isinstance(law, ScalingLaw):
        raise ValueError(f"law={law!r} is a {type(law).__name__}, not a ScalingLaw; pass cl.CHINCHILLA, "
                         "cl.fit_scaling_law(N, D, L) or cl.ScalingLaw(E=..., A=..., B=..., alpha=..., beta=...)")
    return law


def check_loss(law: ScalingLaw, loss) -> float:
    """`loss` (nats/token) if some finite model reaches it under `law`; ValueError otherwise."""
    if not validate.is_number(loss):
        raise ValueError(f"loss={loss!r} must be a finite number of nats/token above the law's E={law.E:g}")
    loss = float(loss)
    if loss <= law.E:
        raise ValueError(f"loss={loss:g} is at or below the law's E={law.E:g}: no model reaches it; "
                         f"choose a loss above E, e.g. {law.E + 0.25:g}")
    n, d = chinchilla_for_loss(law, loss)
    if not (math.isfinite(n) and math.isfinite(d)):
        raise ValueError(f"loss={loss!r} is so close to the law's E={law.E:g} that the model reaching it has more "
                         "parameters or tokens than a float holds; choose a loss further above E")
    return loss


def check_flops_per_token(flops_per_token, n_params: float):
    """`flops_per_token` if it is None or a function of N giving positive FLOPs per token; ValueError otherwise."""
    if flops_per_token is None:
        return None
    if not callable(flops_per_token):
        raise ValueError(f"flops_per_token={flops_per_token!r} must be a function of N (parameters) returning "
                         "training FLOPs per token, e.g. cl.ladder_flops_per_token(), or None for 6N")
    value = float(flops_per_token(n_params))
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"flops_per_token({n_params:.4g}) = {value!r}; it must return positive finite training "
                         "FLOPs per token, e.g. cl.ladder_flops_per_token()")
    return flops_per_token


# -----------------------------------------------------------------------------
# the iso-loss curve and the two solvers

def chinchilla_for_loss(law: ScalingLaw, loss: float) -> tuple[float, float]:
    """Training-compute-optimal (parameters, tokens) reaching `loss` under 6ND (closed form).

    On the C = 6ND frontier (Hoffmann et al. eq. 4) the two reducible terms stand in the ratio
    A/N^alpha : B/D^beta = beta : alpha, so each is its share of loss - E.
    """
    gap = np.float64(loss - law.E)  # numpy, so a power past the float range gives inf, not OverflowError
    with np.errstate(over="ignore", divide="ignore"):
        n = (law.A * (1 + law.alpha / law.beta) / gap) ** (1 / law.alpha)
        d = (law.B * (1 + law.beta / law.alpha) / gap) ** (1 / law.beta)
    return float(n), float(d)


def _optimum_6n(law: ScalingLaw, loss: float, inference_tokens: float) -> tuple[float, float]:
    """(N, D_train) minimising 6 N D + 2 N T on the iso-loss curve: the bracketed root of h(D) above."""
    gap = loss - law.E
    c1 = law.B * (1 + law.beta / law.alpha)
    c2 = inference_tokens * law.beta * law.B / (3 * law.alpha)
    n0, d0 = chinchilla_for_loss(law, loss)
    if c2 == 0:
        return n0, d0  # h(d0) = 0 exactly: the Chinchilla model

    def h(log_d):  # strictly decreasing in log D
        return c1 * math.exp(-law.beta * log_d) + c2 * math.exp(-(law.beta + 1) * log_d) - gap

    # Lower end: at the Chinchilla D the inference term alone keeps h > 0. Upper end: a D at which each
    # term is below gap/2 (so h < 0), one e-fold further to be strict.
    lo = math.log(d0)
    hi = max(math.log(2 * c1 / gap) / law.beta, math.log(2 * c2 / gap) / (law.beta + 1)) + 1.0
    if h(lo) <= 0:
        return n0, d0  # the inference term is below float resolution at the Chinchilla D
    if not h(hi) < 0:
        raise RuntimeError(f"lifetime optimum: the bracket [{math.exp(lo):.4g}, {math.exp(hi):.4g}] tokens does "
                           f"not contain the root (h = {h(lo):.3g}, {h(hi):.3g}); this is a bug")
    from scipy.optimize import brentq

    d = math.exp(brentq(h, lo, hi, xtol=1e-13, rtol=4 * np.finfo(float).eps, maxiter=200))
    # N from the constraint; at the root loss - E - B D^-beta = (beta B / alpha)(1 + T / 3D) D^-beta > 0.
    n = (law.A / (gap - law.B * d ** -law.beta)) ** (1 / law.alpha)
    return n, d


def _optimum_trainer(law: ScalingLaw, loss: float, inference_tokens: float, flops_per_token) -> tuple[float, float]:
    """(N, D_train) minimising fpt(N) D + fpt(N)/3 T on the iso-loss curve, by a bounded 1-D search (in logs).

    The variable is z = log log(N / N_min), N_min = (A / (loss - E))^(1/alpha) the smallest model that reaches
    the loss with unlimited data: every z is a valid model, and z resolves both ends (a model a hair above
    N_min trained on huge D when inference dominates; a large model on little data when it does not).
    On z, loss - E - A/N^alpha = (loss - E)(1 - exp(-alpha e^z)), computed without cancellation.
    """
    from scipy.optimize import minimize_scalar

    gap = loss - law.E
    log_n_min = math.log(law.A / gap) / law.alpha
    log_t = math.log(inference_tokens / 3) if inference_tokens > 0 else -math.inf

    def log_model(z):  # (log N, log D) on the iso-loss curve
        x = math.exp(z)  # log(N / N_min)
        return log_n_min + x, (math.log(law.B / gap) - math.log(-math.expm1(-law.alpha * x))) / law.beta

    def model(z):
        log_n, log_d = log_model(z)
        with np.errstate(over="ignore"):
            return float(np.exp(log_n)), float(np.exp(log_d))

    def lifetime(z):  # log of fpt(N) (D + T/3), in logs so that no product leaves the float range
        log_n, log_d = log_model(z)
        with np.errstate(over="ignore", divide="ignore"):
            return float(np.log(flops_per_token(float(np.exp(log_n))))) + float(np.logaddexp(log_d, log_t))

    # A grid first, so a FLOP count that is not smooth in N (interpolated between ladder rungs) cannot trap
    # the search in a local dip; then Brent between the grid neighbours of the best point.
    grid = np.linspace(math.log(1e-9), math.log(40.0), 400)  # N from N_min (1 + 1e-9) to N_min e^40
    costs = np.array([lifetime(z) for z in grid])
    i = int(np.nanargmin(costs))
    if i in (0, len(grid) - 1):
        n, _ = model(grid[i])
        raise ValueError(f"flops_per_token: the lifetime FLOPs fall all the way to N={n:.3g} parameters at the "
                         "edge of the search, so this FLOP count has no optimum; pass a count that grows with N, "
                         "e.g. cl.ladder_flops_per_token()")
    res = minimize_scalar(lifetime, bounds=(grid[i - 1], grid[i + 1]), method="bounded", options={"xatol": 1e-12})
    return model(float(res.x))


# -----------------------------------------------------------------------------
# the public entry point

def lifetime_optimum(law: ScalingLaw, *, loss: float, inference_tokens: float,
                     flops_per_token=None) -> LifetimeOptimum:
    """The model (parameters, training tokens) with the fewest lifetime FLOPs that reaches `loss` nats/token.

    Lifetime FLOPs = training FLOPs + those of serving `inference_tokens` tokens (prompt + output, all
    requests). By default 6N per training token and 2N per inference token (Sardana et al. 2024);
    `flops_per_token`, a function N -> training FLOPs per token such as `cl.ladder_flops_per_token()`, counts
    as the kit's trainer does instead, with inference at a third of it (the forward pass only).
    """
    law = check_law(law)
    loss = check_loss(law, loss)
    inference_tokens = validate.number(
        "inference_tokens", inference_tokens, low_open=False,
        hint="total tokens served over the model's life, e.g. 2e12 (0 for training only)")
    if flops_per_token is None:
        n, d = _optimum_6n(law, loss, inference_tokens)
        n_c, d_c = chinchilla_for_loss(law, loss)
        train, serve = TRAIN_FLOPS_PER_PARAM, INFERENCE_FLOPS_PER_PARAM
        return LifetimeOptimum(loss, inference_tokens, n, d, train * n * d, serve * n * inference_tokens,
                               n_c, d_c, train * n_c * d_c, serve * n_c * inference_tokens, "6N/2N")
    check_flops_per_token(flops_per_token, chinchilla_for_loss(law, loss)[0])
    n, d = _optimum_trainer(law, loss, inference_tokens, flops_per_token)
    # The Chinchilla model under the same count: the zero-inference optimum of that count, not the 6ND one.
    n_c, d_c = _optimum_trainer(law, loss, 0.0, flops_per_token) if inference_tokens else (n, d)
    f, f_c = float(flops_per_token(n)), float(flops_per_token(n_c))
    return LifetimeOptimum(loss, inference_tokens, n, d, f * d, f / 3 * inference_tokens,
                           n_c, d_c, f_c * d_c, f_c / 3 * inference_tokens, "trainer")
