"""Notebook 04's read-outs as plain arithmetic: the inference-aware model beside the Chinchilla one, in FLOPs,
USD and kWh, under either of Sardana et al. 2024's objectives (arXiv 2401.00448):

  "flops"  fewest lifetime FLOPs, 6 N D_tr + 2 N D_inf (section "Computational Optimality"): `lifetime_optimum`
  "usd"    lowest lifetime USD, generation at 1% MFU (section "Estimating Real-World Cost Optimality"): `lifetime_cost`

Both are priced with the same cost model (`costs.py`: MFU 0.5 to train and prefill, 0.01 to generate), so a
table can show what the FLOP-optimal model costs in USD too. No widgets here: the panel and the plots call it.
"""
from __future__ import annotations

import numpy as np

from cot_lab.core import validate
from cot_lab.core.law import ScalingLaw
from cot_lab.inference.costs import TOKENS_PER_REQUEST, LifetimeCost, ModelCost, lifetime_cost, tokens_pair

OBJECTIVES = ("flops", "usd")

# Model sizes a target loss is chosen among, as the Chinchilla-optimal model that reaches it (parameters).
# Published laws (fitted under C = 6ND on MassiveText): 100M to 1T, default 7B, the size of Sardana et al.'s
# headline (a 7B model trained longer in place of a 13B one). A law counted with the trainer's FLOPs is the
# kit's own, fitted on ladder models of 15K to 12M parameters (`cl.size_ladder`): 1K to 10M, default 100K.
PUBLISHED_SIZES, PUBLISHED_REFERENCE = (1e8, 1e12), 7e9
KIT_SIZES, KIT_REFERENCE = (1e3, 1e7), 1e5


def chinchilla_loss(law: ScalingLaw, n_params: float) -> float:
    """Loss (nats/token) of the training-compute-optimal model with `n_params` parameters under `law` (6ND).

    On the C = 6ND frontier A/N^alpha is beta/(alpha+beta) of the reducible loss (Hoffmann et al. 2022, eq. 4),
    so loss = E + A (1 + alpha/beta) / N^alpha: the inverse of the closed form in `lifetime.py`.
    """
    n_params = validate.number("n_params", n_params, hint="parameters, e.g. 7e9")
    return law.E + law.A * (1 + law.alpha / law.beta) / n_params ** law.alpha


def loss_range(law: ScalingLaw, kit_scale: bool) -> tuple[float, float, float]:
    """(lowest, default, highest) target loss (nats/token): the Chinchilla-optimal losses of the size range."""
    (small, large), reference = (KIT_SIZES, KIT_REFERENCE) if kit_scale else (PUBLISHED_SIZES, PUBLISHED_REFERENCE)
    return chinchilla_loss(law, large), chinchilla_loss(law, reference), chinchilla_loss(law, small)


def target_losses(law: ScalingLaw, kit_scale: bool, per_decade: int = 15) -> list[float]:
    """Target losses (nats/token, rising) of Chinchilla-optimal models log-spaced over the size range,
    `per_decade` per decade of parameters: equal steps in model size, whatever the law's exponents."""
    small, large = KIT_SIZES if kit_scale else PUBLISHED_SIZES
    sizes = np.geomspace(large, small, round(per_decade * np.log10(large / small)) + 1)
    return [chinchilla_loss(law, float(n)) for n in sizes]


def lifetime_choice(law: ScalingLaw, *, loss: float, requests: float, tokens_per_request=TOKENS_PER_REQUEST,
                    gpu: str = "H100-SXM", usd_per_hour: float | None = None, objective: str = "flops",
                    flops_per_token=None) -> LifetimeCost:
    """The inference-aware model for `loss` nats/token and `requests` requests beside the Chinchilla one, priced.

    objective "flops": the model with the fewest lifetime FLOPs; "usd": the one with the lowest lifetime USD.
    Either way both models are priced on `gpu` (training and serving) by `lifetime_cost`.
    """
    validate.one_of("objective", objective, OBJECTIVES)
    return lifetime_cost(law, loss=loss, requests=requests, tokens_per_request=tokens_pair(tokens_per_request),
                         gpu=gpu, usd_per_hour=usd_per_hour, flops_per_token=flops_per_token, objective=objective)


def serving_flops_share(model: ModelCost) -> float:
    """Fraction of a model's lifetime FLOPs spent serving (0 to 1)."""
    return (model.prefill_flops + model.decode_flops) / model.lifetime_flops


def readout_row(cost: LifetimeCost, objective: str) -> dict:
    """The numbers the panel shows for one law, flat: parameters, tokens, FLOPs, USD, kWh and shares (0 to 1)."""
    o, c = cost.optimum, cost.chinchilla
    row = dict(loss=cost.loss, requests=cost.requests, input_tokens=cost.input_tokens,
               output_tokens=cost.output_tokens, gpu=cost.gpu, objective=objective,
               flop_convention=cost.flop_convention)
    for prefix, m in (("", o), ("chinchilla_", c)):
        row |= {f"{prefix}n_params": m.n_params, f"{prefix}train_tokens": m.train_tokens,
                f"{prefix}tokens_per_param": m.train_tokens / m.n_params, f"{prefix}lifetime_flops": m.lifetime_flops,
                f"{prefix}lifetime_usd": m.lifetime_usd, f"{prefix}lifetime_kwh": m.lifetime_kwh,
                f"{prefix}serving_share": m.serving_share, f"{prefix}serving_flops_share": serving_flops_share(m)}
    row |= dict(n_ratio=cost.n_ratio, tokens_ratio=cost.tokens_ratio, usd_ratio=cost.usd_ratio,
                flops_ratio=o.lifetime_flops / c.lifetime_flops, kwh_ratio=cost.kwh_ratio, usd_saved=cost.usd_saved)
    return row
