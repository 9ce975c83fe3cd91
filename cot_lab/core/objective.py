"""What a training step minimises: next-token cross-entropy, and for a Mixture-of-Experts model the router's
load-balancing term on top.

The balance term is transformers' Mixtral `aux_loss`, the Switch Transformer's loss (Fedus et al. 2021,
arXiv 2101.03961, Eq. 4: N_E * sum_i f_i * P_i, pooled over layers; top_k at perfect balance), weighted by
`aux_loss_coef` (Switch's alpha; they found 1e-2 "sufficiently large to ensure load balancing while small enough
to not overwhelm the primary cross-entropy objective", Sec. 2.2). The trainer reports and evaluates the
cross-entropy alone, so an MoE's loss curve is comparable with a dense model's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_AUX_LOSS_COEF = 1e-2  # Fedus et al. 2021, Sec. 2.2 (transformers' Mixtral default is 1e-3)


def next_token_loss(model, rows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats/token) of predicting rows[:, 1:] from rows[:, :-1]; rows [b, T+1]."""
    logits = model(input_ids=rows[:, :-1]).logits  # [b, T, vocab]
    return F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())


def moe_objective(model, rows: torch.Tensor, aux_loss_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross-entropy + aux_loss_coef * balance loss, cross-entropy) of an MoE model on rows [b, T+1], nats/token.

    With aux_loss_coef 0 the router is still asked for its logits (the same forward), and the objective is the
    cross-entropy alone.
    """
    out = model(input_ids=rows[:, :-1], output_router_logits=True)
    ce = F.cross_entropy(out.logits.flatten(0, 1), rows[:, 1:].flatten())
    return ce + aux_loss_coef * out.aux_loss, ce
