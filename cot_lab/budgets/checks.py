"""Notebook 01's exercise checks: parameter counts, tokens a budget buys, FLOP ratios, GPU-hours.

Each expected answer comes from the kit's own accounting; the notebook's tests derive theirs
independently (by hand from the shapes and the datasheet figures).
"""
from __future__ import annotations

from cot_lab.budgets.budget import Budget
from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.core.config import ModelConfig
from cot_lab.ui.checks import CheckResult, check_number, choice, is_answered

__all__ = ["CheckResult", "choice", "is_answered", "params", "tokens", "tokens_from_gpu_hours", "flops_ratio",
           "most_flops_at_long_context", "budget_flops", "budget_hours"]

ACCOUNTINGS = ("6n", "kaplan", "chinchilla")


def _gpu_hours_flops(gpu: str, hours: float, mfu: float) -> float:
    # A placeholder price of 0: the FLOPs do not depend on it, and some catalog GPUs have no price.
    return Budget.from_gpu_hours(gpu, hours, mfu, usd_per_hour=0.0).flops


def params(answer, cfg: ModelConfig) -> CheckResult:
    """Check a parameter count (parameters) for `cfg` against `count_params(cfg).total`, within 1%."""
    return check_number(answer, count_params(cfg).total, rel=0.01, name="your parameter count", unit="parameters",
                        hint="count every weight matrix: the embedding (vocab x d_model, shared with the output head "
                             "when tied), per layer 4 attention projections (d_model x d_model each) and 3 SwiGLU "
                             "matrices (d_model x d_ff each), plus one RMSNorm gain vector of d_model per norm "
                             "(2 per layer and a final one).")


def tokens(answer, cfg: ModelConfig, flops: float) -> CheckResult:
    """Check how many training tokens (tokens) `flops` FLOPs buy for `cfg`, within 2%."""
    return check_number(answer, flops / flops_per_token(cfg), rel=0.02, name="your token count", unit="tokens",
                        hint="training costs about 6 FLOPs per parameter per token (2 forward, 4 backward): "
                             "tokens = C / (6 N); cl.flops_per_token(cfg) gives the exact per-token cost used by the "
                             "trainer.")


def tokens_from_gpu_hours(answer, cfg: ModelConfig, gpu: str, hours: float, mfu: float) -> CheckResult:
    """`tokens` for the budget of `hours` GPU-hours of `gpu` at `mfu`: the cell does not show that budget's FLOPs,
    which are the previous exercise's answer."""
    return tokens(answer, cfg, _gpu_hours_flops(gpu, hours, mfu))


def flops_ratio(answer, cfg: ModelConfig, seq_len: int, method: str = "chinchilla") -> CheckResult:
    """Check a ratio (dimensionless) of `method`'s training FLOPs per token at `seq_len` to 6N, within 5%."""
    expected = flops_per_token(cfg, method, seq_len=seq_len) / flops_per_token(cfg, "6n")
    return check_number(answer, expected, rel=0.05, name="your ratio", hint=(
        "per token, attention scores and weighted values cost 12 x n_layer x seq_len x d_model in training "
        "(forward and backward), on top of about 6N: ratio = 1 + that / 6N."))


def most_flops_at_long_context(answer) -> CheckResult:
    """Check which accounting ("6n", "kaplan", "chinchilla") counts the most FLOPs per token at a long context."""
    return choice(answer, "chinchilla", ACCOUNTINGS, name="most_flops_at_8192",
                  hint="which accounting counts both attention products, the scores QK and the weighted values AV?")


def budget_flops(answer, gpu: str, hours: float, mfu: float) -> CheckResult:
    """Check the training FLOPs (FLOPs) that `hours` GPU-hours of `gpu` deliver at `mfu`, within 1%."""
    expected = _gpu_hours_flops(gpu, hours, mfu)
    return check_number(answer, expected, rel=0.01, name="your FLOP count", unit="FLOPs", hint=(
        "FLOPs = peak FLOP/s x MFU x seconds: the dense BF16 peak is cl.gpu(name).peak_flops, "
        "and an hour has 3,600 seconds."))


def budget_hours(answer, flops: float, gpu: str, mfu: float) -> CheckResult:
    """Check how many GPU-hours (hours) of `gpu` at `mfu` deliver `flops` FLOPs, within 2%."""
    expected = Budget.from_flops(flops, gpu, mfu, usd_per_hour=0.0).hours
    return check_number(answer, expected, rel=0.02, name="your GPU-hour count", unit="GPU-hours", hint=(
        "first the FLOPs (C = 6 N D for N parameters on D tokens), then divide by what one hour delivers: "
        "peak FLOP/s x MFU x 3,600 s."))
