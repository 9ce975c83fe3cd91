"""Notebook 05's exercise checkers. Each expected value is computed here a second way, not by the function the
exercise is about: a root of the law itself for the wasted compute, a 2 x 2 linear solve for the critical batch,
DeepSeek's published constants written out for their batch law."""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq

from cot_lab.core import validate
from cot_lab.core.law import ScalingLaw
from cot_lab.ui.checks import CheckResult, check_number


def multiplier_answer(answer, law: ScalingLaw, *, n_params: float, tokens: float, loss: float,
                      best_loss: float) -> CheckResult:
    """Check the budget multiplier of a run that ended at `loss` where a tuned run of the same model on the same
    `tokens` ended at `best_loss`, within 1%. Expected: the tokens at which the law, shifted through the tuned run,
    reaches `loss`, found by a root search on L(N, D) itself."""
    n = validate.number("n_params", n_params)
    tokens = validate.number("tokens", tokens)
    shift = best_loss - float(law.loss(n, tokens))
    needed = math.exp(brentq(lambda x: float(law.loss(n, math.exp(x))) + shift - loss, -20.0, math.log(tokens)))
    return check_number(answer, tokens / needed, rel=0.01, name="my_multiplier", unit="x",
                        hint="only the data term B / D^beta changes between the two runs of one model: find the D' "
                             "at which B / D'^beta exceeds B / D^beta by the loss gap, then divide D by D'.")


def critical_batch_answer(answer, batch_sizes, steps) -> CheckResult:
    """Check McCandlish et al.'s B_crit = E_min / S_min (sequences) from two (batch, steps) points, within 1%.
    Expected: S = S_min + E_min / B at both points, solved as two linear equations."""
    (b1, b2), (s1, s2) = [float(b) for b in batch_sizes], [float(s) for s in steps]
    s_min, e_min = np.linalg.solve(np.array([[1.0, 1.0 / b1], [1.0, 1.0 / b2]]), np.array([s1, s2]))
    return check_number(answer, e_min / s_min, rel=0.01, name="my_critical_batch", unit="sequences",
                        hint="write S = S_min + E_min / B at both batch sizes: two equations, two unknowns. "
                             "B_crit is the batch at which the steps are twice S_min, E_min / S_min.")


def deepseek_batch_answer(answer, flops: float, seq_len: int) -> CheckResult:
    """Check DeepSeek LLM's B_opt at `flops` FLOPs in sequences of `seq_len` tokens, within 1%. Expected: Bi et
    al. 2024 (arXiv 2401.02954, Sec. 3.1), B_opt = 0.2920 C^0.3271 tokens."""
    tokens = 0.2920 * validate.number("flops", flops) ** 0.3271
    return check_number(answer, tokens / validate.integer("seq_len", seq_len), rel=0.01,
                        name="my_deepseek_sequences", unit="sequences",
                        hint="their law gives tokens per batch; a sequence holds seq_len of them.")
