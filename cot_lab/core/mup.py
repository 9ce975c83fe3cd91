"""A minimal muP (maximal-update parametrisation) for the kit's Llama models, on the ordinary transformers modules.

muP (Yang et al. 2022, "Tensor Programs V", arXiv 2203.03466, Table 3 for Adam) sets init and learning rate per
kind of parameter so that every layer's update stays the same size in each coordinate as the width grows; the
best learning rate found at a narrow "base" width then holds at any width. With m = d_model / base_width:

- hidden matrices (attention q, k, v, o and the MLP's gate, up, down; fan-in d_model or d_ff, both ~ width):
  init std / sqrt(m) (variance ~ 1/fan_in) and Adam learning rate / m;
- the token embedding (tied to the output head here) and the norm gains: init and learning rate unchanged;
- the output logits multiplied by 1/m. With tied embeddings this is the `mup` package's `MuSharedReadout`
  (the shared table is treated as an input weight, the readout scaled by 1/width_mult). We put the 1/m in the
  final RMSNorm's gain (init 1/m) and give that gain learning rate / m: under Adam, whose steps do not depend
  on the gradient's scale, that trains exactly like a gain of init 1 behind a fixed multiplier of 1/m, and it
  needs no change to the forward pass (transformers' or `core/stacked_llama.py`'s), the checkpoint or the store;
- attention logits: muP scales them by 1/d_head instead of 1/sqrt(d_head). The kit widens a model by adding
  heads of a fixed size (n_head = d_model / 8 in every ladder), so d_head does not change with width and the two
  differ by a constant, which the base width's tuned rate absorbs. A sweep that grew d_head would need the 1/d_head.

At m = 1 (d_model = base_width) muP is the kit's standard parametrisation, weight for weight. Scaling every
parameter's learning rate by 1/width with the standard init is *not* muP. `cot_lab/hparams/width.py` checks this
implementation with a coordinate check and measures whether the optimum transfers.
"""
from __future__ import annotations

import math

import torch

HIDDEN = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def width_multiplier(model, base_width: int) -> float:
    """m = d_model / base_width (dimensionless)."""
    return model.config.hidden_size / float(base_width)


def hidden_matrices(model) -> list[torch.nn.Parameter]:
    """The weights of the attention and MLP projections: the matrices whose both dimensions grow with width."""
    return [module.weight for name, module in model.named_modules() if name.rsplit(".", 1)[-1] in HIDDEN]


def output_gain(model) -> torch.nn.Parameter:
    """The final RMSNorm's gain, which carries muP's 1/m output multiplier."""
    return model.model.norm.weight


def apply_mup_init(model, base_width: int) -> None:
    """Re-scale a freshly built model's init to muP, in place: hidden matrices x 1/sqrt(m), final gain = 1/m."""
    m = width_multiplier(model, base_width)
    with torch.no_grad():
        for weight in hidden_matrices(model):
            weight.mul_(1.0 / math.sqrt(m))
        output_gain(model).fill_(1.0 / m)


def lr_scales(model, base_width: int | None) -> dict[int, float]:
    """id(parameter) -> its learning-rate multiplier: 1/m for the hidden matrices and the final gain under muP;
    empty for the standard parametrisation (base_width None), where every parameter takes the peak rate."""
    if base_width is None:
        return {}
    scale = 1.0 / width_multiplier(model, base_width)
    return {id(p): scale for p in [*hidden_matrices(model), output_gain(model)]}
