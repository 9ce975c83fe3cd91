"""The training recipe: learning rate, its schedule, the optimizer and the batch size for a budget.

The small-scale defaults of the field: AdamW with betas (0.9, 0.95), weight decay 0.1 and gradient
clipping at 1.0 (nanoGPT's GPT-2 configuration, train_gpt2 config); linear warmup, then cosine decay
to 10% of the peak over the run's own length (Hoffmann et al. 2022, arXiv 2203.15556, App. B: a
cosine longer than the run hurts). Notebook 05 studies these rules; the trainer reads them from here.
"""
from __future__ import annotations

import math

import torch

from cot_lab.core.config import ModelConfig


BETA2 = 0.95  # AdamW's second-moment decay; set from the recipe pilot (RECIPE_PILOT below)


def default_lr(cfg: ModelConfig) -> float:
    """Peak learning rate for `cfg`: 3e-3 at d_model 128, scaled as 1/d_model (muP-style width rule), clipped to [3e-4, 1e-2]."""
    return min(1e-2, max(3e-4, 3e-3 * 128 / cfg.d_model))


def lr_at(progress: float, peak: float, warmup: float, min_ratio: float) -> float:
    """Learning rate at `progress` (fraction of budget spent, 0..1): linear warmup, then cosine to min_ratio*peak."""
    if progress < warmup:
        return peak * max(progress, 1e-3) / warmup
    decay = min(1.0, (progress - warmup) / max(1e-12, 1.0 - warmup))
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * decay)))


def decayed_parameters(model) -> tuple[list, list]:
    """(decayed, not decayed): weight decay on the weight matrices of attention and MLP only.

    Norm gains (1-D) and the token embedding (a lookup table, tied to the output head here) are not
    decayed: decaying a row that a rare token seldom updates shrinks it toward zero between updates.
    nanoGPT's rule (every tensor with dim >= 2) would decay the embedding, because it is a matrix.
    """
    embeddings = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 and id(p) not in embeddings else no_decay).append(p)
    return decay, no_decay


def make_optimizer(model, lr: float, weight_decay: float, device: torch.device, beta2: float = BETA2):
    """AdamW with betas (0.9, beta2), eps 1e-8, `weight_decay` on the matrices `decayed_parameters` picks."""
    decay, no_decay = decayed_parameters(model)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are missing on some devices (e.g. older MPS builds)
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), eps=1e-8)


# Batch rule: DeepSeek LLM (2024) fit B_opt = 0.2920 C^0.3271 tokens over 1e17-3e20 FLOPs. We keep their
# exponent and set the constant from pilot runs here: on the synthetic language, 2-4 sequences of 128
# tokens per step beat 16 by 0.1-0.2 nats/token at 1e11-3e11 FLOPs (notebook 02 shows it), because these
# budgets buy only a few thousand steps. Their constant would give 5-10x larger batches at our budgets.
BATCH_EXPONENT = 0.3271
BATCH_TOKENS_AT_1E11 = 256.0


def batch_size_for(flops: float, seq_len: int) -> int:
    """Sequences per optimizer step for a budget (FLOPs): 256 tokens at 1e11 FLOPs, growing as C^0.3271; at least 2."""
    tokens = BATCH_TOKENS_AT_1E11 * (flops / 1e11) ** BATCH_EXPONENT
    return max(2, round(tokens / seq_len))
