"""DeepSeek LLM's hyperparameter laws, for reference beside what the kit measures at laptop budgets.

Bi et al. 2024 ("DeepSeek LLM", arXiv 2401.02954, Sec. 3.1, Fig. 3) grid-searched the learning rate and batch
size at budgets of 1e17 FLOPs and up and fitted

    eta_opt = 0.3118 C^-0.1250        B_opt = 0.2920 C^0.3271  (tokens)

with C their compute (non-embedding FLOPs per token x tokens). At this kit's budgets (1e10 to 1e13 FLOPs) both
are extrapolations over four to seven decades: plot them as such, never as the answer.
"""
from __future__ import annotations

import numpy as np

from cot_lab.core import validate

LR_COEFFICIENT, LR_EXPONENT = 0.3118, -0.1250
BATCH_COEFFICIENT, BATCH_EXPONENT = 0.2920, 0.3271
FITTED_FROM_FLOPS = 1e17  # the smallest budget of their grids: below it the laws are extrapolated


def _flops(flops):
    return validate.positive_array("flops", flops, "FLOPs")


def deepseek_lr(flops):
    """DeepSeek LLM's optimal peak learning rate at `flops` FLOPs (a float, or an array for an array)."""
    out = LR_COEFFICIENT * _flops(flops) ** LR_EXPONENT
    return float(out) if np.ndim(flops) == 0 else out


def deepseek_batch_tokens(flops):
    """DeepSeek LLM's optimal batch size in tokens at `flops` FLOPs (a float, or an array for an array)."""
    out = BATCH_COEFFICIENT * _flops(flops) ** BATCH_EXPONENT
    return float(out) if np.ndim(flops) == 0 else out


def extrapolated(flops) -> np.ndarray:
    """True where `flops` lies below the budgets DeepSeek fitted on (FITTED_FROM_FLOPS)."""
    return _flops(flops) < FITTED_FROM_FLOPS
