"""Outlier features without changing the function: the situation in which Wanda beats magnitude pruning.

Large language models develop a few hidden dimensions with very large activations (Dettmers et al.
2022, "LLM.int8()"; the premise of Wanda, Sun et al. 2023): the weights reading those dimensions are
small, so magnitude pruning removes them, although they carry a large signal. The tiny models of this
course do not grow such features. `add_outlier_features` makes some by a reparametrization that
leaves every output unchanged: multiply an RMSNorm gain g_j by `scale` and divide column j of every
matrix reading that norm by `scale`. |W_ij| * ||X_j|| (Wanda's score) is unchanged; |W_ij| is not.
"""
from __future__ import annotations

import torch

from cot_lab.compress.targets import check_model
from cot_lab.core import validate


@torch.no_grad()
def add_outlier_features(model, n_features: int = 4, scale: float = 10.0):
    """Give the `n_features` most-read dimensions of every block's two RMSNorms `scale` times their activation
    (dividing the weights that read them by `scale`), in place; the model computes the same function. Returns it."""
    check_model(model)
    width = model.config.hidden_size
    n_features = validate.integer("n_features", n_features, high=width, hint=f"at most hidden_size={width}")
    scale = validate.number("scale", scale, hint="e.g. 10")
    for layer in model.model.layers:
        for norm, readers in ((layer.input_layernorm, (layer.self_attn.q_proj, layer.self_attn.k_proj,
                                                       layer.self_attn.v_proj)),
                              (layer.post_attention_layernorm, (layer.mlp.gate_proj, layer.mlp.up_proj))):
            # the dimensions that carry most: gain times the norm of the weights reading them
            carried = norm.weight.abs().float() * sum(lin.weight.float().norm(dim=0) for lin in readers)
            dims = torch.topk(carried, n_features).indices
            norm.weight[dims] *= scale
            for lin in readers:
                lin.weight[:, dims] /= scale
    return model
