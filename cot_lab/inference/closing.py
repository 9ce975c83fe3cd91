"""Notebook 04's closing experiment: one target loss, two models of the kit's own ladder, both really trained.

The compute-optimal model for a loss is the one with the fewest training FLOPs (Hoffmann et al. 2022, arXiv
2203.15556); the inference-aware one is smaller and trained on more tokens, and it is the better buy once it will
serve enough tokens (Sardana et al. 2024, arXiv 2401.00448). Here both are rungs of `size_ladder`:

  * the target loss is the one at which rung BIG_RUNG is the law's compute-optimal size (FLOPs counted as the
    trainer counts them), trained for that optimum's tokens;
  * rung SMALL_RUNG is trained for the tokens that the same law says bring it to the same loss: far more tokens
    per parameter than the optimum (over-trained), for more training FLOPs;
  * the break-even is the number of served tokens at which the two models' lifetime FLOPs are equal (a served
    token costs a forward pass, a third of the trainer's count); past it the smaller model is the cheaper one;
  * `optimal_from_inference_tokens` is where the law's lifetime optimum itself has shrunk to the smaller rung,
    later than the break-even: between the two, sizes between the rungs would be cheaper still.

`closing_pair(law)` computes the pair from a law; the shipped pair (`cot_lab/precomputed/models/lifetime-*`,
trained with `python -m cot_lab.core.shipped build NAME`) was planned from the shipped laptop law of notebook
02, and a test ties the shipped specs to this function. Whether both reach the target is the experiment: the
smaller model's tokens lie far beyond the sweep's tokens per parameter, an extrapolation of the law.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.core.config import ModelConfig
from cot_lab.core.law import ScalingLaw
from cot_lab.core.shapes import ladder_flops_per_token, size_ladder
from cot_lab.inference.lifetime import check_law, lifetime_optimum

BIG_RUNG = 2     # d_model 32 x 4 layers: 66,848 parameters at vocabulary 512
SMALL_RUNG = 1   # d_model 24 x 3 layers: 33,192 parameters
SHIPPED = {"chinchilla": "lifetime-67k", "overtrained": "lifetime-33k"}  # names in cot_lab.core.shipped.SPECS
CORPUS = "synthetic-v3"  # the language notebook 02's law was fitted on


@dataclass(frozen=True)
class ClosingModel:
    """One model of the pair: its shape, training tokens and FLOPs (trainer's count), the law's predicted loss."""

    role: str            # "chinchilla" | "overtrained"
    config: ModelConfig
    n_params: int
    tokens: float
    flops: float
    predicted_loss: float  # nats/token

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.n_params


@dataclass(frozen=True)
class ClosingPair:
    """The compute-optimal and the over-trained rung for one target loss, and where the smaller one pays off."""

    target_loss: float                    # nats/token
    chinchilla: ClosingModel
    overtrained: ClosingModel
    break_even_inference_tokens: float    # served tokens at which both models' lifetime FLOPs are equal
    optimal_from_inference_tokens: float  # served tokens from which the law's lifetime optimum is the smaller rung

    @property
    def models(self) -> tuple[ClosingModel, ClosingModel]:
        return self.chinchilla, self.overtrained


def _rung_is_optimal_at(law: ScalingLaw, n_params: float, fpt) -> float:
    """The loss at which `n_params` is the law's compute-optimal size (FLOPs per token `fpt(N)`)."""
    from scipy.optimize import brentq

    # N_opt(C) grows monotonically with C: bracket log C wide and solve N_opt(C) = n_params
    log_c = brentq(lambda lc: math.log(law.optimal(math.exp(lc), flops_per_token=fpt)[0] / n_params),
                   math.log(1e6), math.log(1e30), xtol=1e-10)
    n, d = law.optimal(math.exp(log_c), flops_per_token=fpt)
    return float(law.loss(n, d))


def closing_pair(law: ScalingLaw, *, seq_len: int = 128, vocab_size: int = 512, big_rung: int = BIG_RUNG,
                 small_rung: int = SMALL_RUNG) -> ClosingPair:
    """The pair of ladder rungs for notebook 04's closing experiment, planned from `law`.

    The target loss is where rung `big_rung` is compute-optimal; each rung is trained for the tokens the law
    says bring it to that loss (D = (B / (loss - E - A / N^alpha))^(1/beta)). FLOPs are the trainer's count.
    """
    law = check_law(law)
    if not (isinstance(big_rung, int) and isinstance(small_rung, int) and 0 <= small_rung < big_rung):
        raise ValueError(f"small_rung={small_rung!r}, big_rung={big_rung!r} must be ladder indices with "
                         f"0 <= small_rung < big_rung, e.g. small_rung=1, big_rung=2")
    ladder = size_ladder(seq_len, vocab_size)
    fpt = ladder_flops_per_token(seq_len, vocab_size)
    big, small = ladder[big_rung], ladder[small_rung]
    target = _rung_is_optimal_at(law, count_params(big).total, fpt)

    def planned(role: str, cfg: ModelConfig) -> ClosingModel:
        n = count_params(cfg).total
        reducible = target - law.E - law.A / n ** law.alpha
        if reducible <= 0:
            raise ValueError(f"rung {cfg.d_model}x{cfg.n_layer} ({n:,} parameters) cannot reach loss {target:.4f} "
                             f"under this law at any token count; choose a larger small_rung")
        tokens = (law.B / reducible) ** (1.0 / law.beta)
        return ClosingModel(role, cfg, n, tokens, tokens * flops_per_token(cfg), float(law.loss(n, tokens)))

    chinchilla, overtrained = planned("chinchilla", big), planned("overtrained", small)
    return ClosingPair(target, chinchilla, overtrained, _break_even(chinchilla, overtrained),
                       _optimal_from(law, target, overtrained.n_params, fpt))


def _break_even(big: ClosingModel, small: ClosingModel) -> float:
    """Served tokens at which `small` (more training FLOPs, fewer per served token) costs what `big` does."""
    # serving is forward only: a third of the trainer's training count per token (Kaplan et al. 2020, Sec. 2.1)
    serve_big, serve_small = flops_per_token(big.config) / 3, flops_per_token(small.config) / 3
    return (small.flops - big.flops) / (serve_big - serve_small)


def _optimal_from(law: ScalingLaw, loss: float, n_params: float, fpt) -> float:
    """Inference tokens at which the lifetime optimum for `loss` has `n_params` parameters (it falls with them)."""
    from scipy.optimize import brentq

    def gap(log_t):
        return math.log(lifetime_optimum(law, loss=loss, inference_tokens=math.exp(log_t),
                                         flops_per_token=fpt).n_params / n_params)

    # 1e15 tokens: far past any break-even a ladder rung has, short of where N_opt nears its asymptote (the
    # size whose A / N^alpha alone is the whole reducible loss) and the search's edge
    low, high = math.log(1.0), math.log(1e15)
    if gap(low) <= 0:   # already the optimum with (almost) nothing served
        return 0.0
    if gap(high) > 0:   # never small enough: the law's N_opt levels off above this rung
        return math.inf
    return float(math.exp(brentq(gap, low, high, xtol=1e-8)))


def pair_plan(pair: ClosingPair, *, flops_scale: float = 1.0):
    """The pair as a two-point `SweepPlan` (batch by the kit's budget rule), for `SweepButton` or `run_sweep`.

    flops_scale < 1 trains both shapes on that fraction of their FLOPs: the same code path in seconds (tests),
    not the experiment (the models then stop far above the target)."""
    from cot_lab.core.recipe import batch_size_for
    from cot_lab.core.validate import number
    from cot_lab.scaling.sweep import SweepPlan, SweepPoint

    scale = number("flops_scale", flops_scale, high=1.0, hint="a fraction of the planned FLOPs, e.g. 1.0 or 1e-3")
    points = []
    for model in pair.models:
        flops = model.flops * scale
        points.append(SweepPoint(flops, model.config, batch_size_for(flops, model.config.seq_len)))
    return SweepPlan(points)
