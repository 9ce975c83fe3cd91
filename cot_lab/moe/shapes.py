"""MoE shapes matched to a dense model: the same attention, width and depth, its MLP split into experts at equal
active FLOPs per token.

Granularity (Krajewski et al. 2024, arXiv 2402.07871, their definition G = d_ff / d_expert): the dense MLP
width over one expert's width. Their fine-grained MoE routes each token to G experts of width d_ff / G, so the
active expert width top_k * d_expert is the dense d_ff and the FLOPs per token stay the dense model's; G = 1 with
top-1 is the Switch Transformer's layer (Fedus et al. 2021, arXiv 2101.03961, Sec. 2.1), and DeepSeekMoE's
fine-grained expert segmentation is the same rule (Dai et al. 2024, arXiv 2401.06066, Sec. 3.1: m-times smaller
experts, m-times more of them active). So here top_k = G: the two name one choice.

The router costs d_model * n_experts parameters (and 2x that in forward FLOPs) per layer on top of the experts;
`moe_shape` takes it out of the experts' width, so the match is as close as an integer width allows:
|active MLP params - dense MLP params| <= 1.5 * top_k * d_model per layer, which on the kit's ladder is
at most 0.14% x G of the training FLOPs per token (0.54% at G = 4, 1.1% at G = 8, on its 24-wide rung);
`flops_mismatch` gives the exact number for a pair.
"""
from __future__ import annotations

import math

from cot_lab.core import validate
from cot_lab.core.accounting import flops_per_token
from cot_lab.core.config import ModelConfig
from cot_lab.core.shapes import size_ladder


def _check_routing(n_experts, top_k, granularity) -> tuple[int, int]:
    """(n_experts, top_k) validated; top_k and granularity must agree when both are given (top_k = G)."""
    if not validate.is_integer(n_experts) or n_experts < 1:
        raise ValueError(f"n_experts={n_experts!r} must be a positive integer (experts per MoE layer, e.g. 8); "
                         "an MoE layer with zero experts has nothing to route to")
    for name, value in (("top_k", top_k), ("granularity", granularity)):
        if value is not None and (not validate.is_integer(value) or value < 1):
            raise ValueError(f"{name}={value!r} must be a positive integer or None; granularity G = d_ff / d_expert "
                             "is the number of experts a token visits at matched FLOPs (1, 2, 4, 8)")
    if top_k is not None and granularity is not None and top_k != granularity:
        raise ValueError(f"granularity={granularity!r} with top_k={top_k!r}: at matched active FLOPs a token visits "
                         f"G experts of width d_ff / G, so top_k must equal granularity; pass one of them")
    k = int(top_k if top_k is not None else granularity if granularity is not None else 1)
    if k > n_experts:
        raise ValueError(f"top_k={k} (granularity) must be at most n_experts={n_experts}: a token cannot visit "
                         f"more experts than the layer has")
    return int(n_experts), k


def expert_width(d_ff: int, d_model: int, n_experts: int, top_k: int, multiple_of: int = 1) -> int:
    """The expert width (hidden units, a multiple of `multiple_of`) whose top_k experts plus the router come
    nearest to the parameters of one dense SwiGLU MLP of width d_ff: the multiple nearest to
    (3 d_ff - n_experts) / (3 top_k)."""
    multiple_of = validate.integer("multiple_of", multiple_of, hint="1 for the exact match, 8 for the fast kernel")
    # per layer, per d_model: dense MLP 3 d_ff; MoE active 3 top_k d_expert (experts) + n_experts (router)
    ideal = (3 * d_ff - n_experts) / (3 * top_k)
    candidates = [w for w in (math.floor(ideal / multiple_of) * multiple_of, math.ceil(ideal / multiple_of) * multiple_of)
                  if w >= 1]
    if ideal < 1 or not candidates:
        raise ValueError(f"granularity={top_k} with n_experts={n_experts} leaves no expert width at d_ff={d_ff} "
                         f"(d_model={d_model}): the router alone would cost the dense MLP's FLOPs; use a smaller "
                         f"granularity or fewer experts, or a wider model")
    return min(candidates, key=lambda w: abs(3 * top_k * w + n_experts - 3 * d_ff))


def moe_shape(dense: ModelConfig, *, n_experts: int = 8, top_k: int | None = None,
              granularity: int | None = None, multiple_of: int = 1) -> ModelConfig:
    """The MoE config with `dense`'s attention, width and depth whose active training FLOPs per token match
    `dense`'s (to an expert width that is a multiple of `multiple_of`): n_experts experts of width ~d_ff / G,
    top_k = G of them per token.

    Give top_k or granularity (they are equal at matched FLOPs) or neither (1: Switch-style top-1).
    multiple_of=8 keeps the experts on transformers' grouped matmul (`cl.experts_implementation`), 2.5-4.6x
    faster per training step on a 2-core CPU than the eager loop an odd width falls back to (d_model 16-40,
    8 experts, top-2); the match is then to half a step of 8 units (`flops_mismatch`: within about 2%). The
    course's IsoFLOP comparison is unaffected either way: every run is trained for exactly its FLOP budget.
    """
    if not isinstance(dense, ModelConfig) or dense.arch != "dense":
        raise ValueError(f"dense={dense!r} must be a dense cl.ModelConfig (arch='dense'), the model to match")
    n_experts, k = _check_routing(n_experts, top_k, granularity)
    width = expert_width(dense.d_ff, dense.d_model, n_experts, k, multiple_of)
    return dense.replace(arch="moe", n_experts=n_experts, top_k=k, d_ff=width)


def granularity_of(moe: ModelConfig, dense: ModelConfig) -> float:
    """G = d_ff(dense) / d_expert(moe) (Krajewski et al. 2024): close to top_k for a `moe_shape`, not exactly,
    because the router's parameters come out of the experts' width."""
    return dense.d_ff / moe.d_ff


def flops_mismatch(moe: ModelConfig, dense: ModelConfig, method: str = "chinchilla") -> float:
    """Relative difference of training FLOPs per token, moe / dense - 1 (a fraction; 0 is an exact match)."""
    return flops_per_token(moe, method) / flops_per_token(dense, method) - 1.0


def moe_ladder(*, n_experts: int = 8, top_k: int | None = None, granularity: int | None = None, seq_len: int = 128,
               vocab_size: int = 512, rungs: int = 24, multiple_of: int = 1) -> tuple[ModelConfig, ...]:
    """`moe_shape` of every rung of `cl.size_ladder` (smallest first): MoE shapes at the dense ladder's active FLOPs.

    Rungs too narrow for the granularity (no expert width left) raise ValueError naming granularity.
    """
    return tuple(moe_shape(cfg, n_experts=n_experts, top_k=top_k, granularity=granularity, multiple_of=multiple_of)
                 for cfg in size_ladder(seq_len, vocab_size, rungs))
