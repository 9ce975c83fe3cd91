"""The training recipe: learning rate, its schedule, the optimizer and the batch size for a budget.

AdamW with betas (0.9, BETA2), weight decay 0.1 on the attention and MLP matrices only, gradient clipping at
1.0; linear warmup over 5% of the run, then cosine decay to 10% of the peak over the run's own length
(Hoffmann et al. 2022, arXiv 2203.15556, App. B: a cosine longer than the run hurts). The peak rate, beta2 and
the batch constant are fitted to the recipe pilot (`cot_lab/scaling/recipe_pilot.py`, shipped as data, shown in
notebook 02; tests/test_recipe.py refits them from it). Notebook 05 studies these rules; the trainer reads them here.
"""
from __future__ import annotations

import math

import torch

from cot_lab.core.config import ModelConfig


# Fitted to the recipe pilot (`cot_lab/scaling/recipe_pilot.py`, shipped in precomputed/recipe-pilot/; a test
# refits these from it): AdamW's beta2, and the peak learning rate lr = LR_AT_D32 (d_model / 32)^-LR_WIDTH_EXPONENT.
BETA2 = 0.99
LR_AT_D32 = 5.221e-3
LR_WIDTH_EXPONENT = -0.5029  # negative: at a fixed budget the wider model takes fewer steps, which favour a higher rate


def default_lr(cfg: ModelConfig) -> float:
    """Peak learning rate for `cfg`: LR_AT_D32 x (d_model / 32)^-LR_WIDTH_EXPONENT, the width rule fitted to the pilot."""
    return LR_AT_D32 * (cfg.d_model / 32.0) ** -LR_WIDTH_EXPONENT


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


def make_optimizer(model, lr: float, weight_decay: float, device: torch.device, beta2: float = BETA2,
                   mup_base_width: int | None = None):
    """AdamW with betas (0.9, beta2), eps 1e-8, `weight_decay` on the matrices `decayed_parameters` picks.

    Each param group carries an "lr_scale" (the trainer sets a group's rate to the schedule's rate times it):
    1 everywhere in the standard parametrisation; under muP (`mup_base_width`), 1/m on the hidden matrices and
    the output gain (`core/mup.py`).
    """
    from cot_lab.core.mup import lr_scales

    scales = lr_scales(model, mup_base_width)
    decay, no_decay = decayed_parameters(model)
    groups = []
    for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
        for scale in sorted({scales.get(id(p), 1.0) for p in params}):
            members = [p for p in params if scales.get(id(p), 1.0) == scale]
            groups.append({"params": members, "weight_decay": wd, "lr_scale": scale, "lr": lr * scale})
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are missing on some devices (e.g. older MPS builds)
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, beta2), eps=1e-8)


# Batch rule: DeepSeek LLM (Bi et al. 2024, arXiv 2401.02954, Sec. 3.1) fit B_opt = 0.2920 C^0.3271 tokens over
# 1e17-3e20 FLOPs. We keep their exponent and set the constant from the recipe pilot: at 1e12 FLOPs (d_model 32,
# beta2 0.99, each batch with its rate re-tuned) 4 sequences of 128 tokens tie with 2 and beat 8 and 16
# (notebook 02, section 3), because these budgets buy only a few thousand steps. Their constant would give
# 5-10x larger batches at our budgets.
BATCH_EXPONENT = 0.3271
BATCH_TOKENS_AT_1E11 = 256.0


def batch_size_for(flops: float, seq_len: int) -> int:
    """Sequences per optimizer step for a budget (FLOPs): 256 tokens at 1e11 FLOPs, growing as C^0.3271; at least 2."""
    tokens = BATCH_TOKENS_AT_1E11 * (flops / 1e11) ** BATCH_EXPONENT
    return max(2, round(tokens / seq_len))
