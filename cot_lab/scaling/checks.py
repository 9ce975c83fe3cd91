"""Notebook 02's exercise checks: numbers read off a fitted law, each within a stated tolerance.

Each checker computes its expected value from the objects the notebook passes in, so neither the
expected value nor the hint stands in a cell the student reads before answering.
"""
from __future__ import annotations

from cot_lab.ui.checks import CheckResult, check_number, is_answered

__all__ = ["CheckResult", "is_answered", "optimal_size_answer", "growth_answer", "closing_loss_answer"]


def optimal_size_answer(answer, fit) -> CheckResult:
    """Check the compute-optimal size (parameters) at the largest budget read off the IsoFLOP plot, within 35%.

    `fit` is the notebook's `sweep_fit.fit_sweep(...)`; the star is Approach 2's N_opt of the largest budget.
    """
    expected = float(fit.approach2["N_opt"][-1])
    # 35%: a star read by eye off a log axis, where one tick is 10x, is off by about that much.
    return check_number(answer, expected, rel=0.35, name="best_size_at_largest_budget", unit="parameters",
                        hint="find the star of the largest budget's colour and read its x position on the log axis "
                             "(each tick is 10x).")


def growth_answer(answer) -> CheckResult:
    """Check the factor by which N_opt grows when the budget grows 100x, if N_opt ~ C^0.5 (exercise 2), within 2%."""
    return check_number(answer, 100 ** 0.5, rel=0.02, name="growth_for_100x",
                        hint="N_opt(100 C) / N_opt(C) = 100^a.")


def closing_loss_answer(answer, law, prediction: dict) -> CheckResult:
    """Check a loss (nats/token) predicted with `law` for the run `prediction` describes (its n_params, tokens).

    The answer is computed, not read off a plot, so it must match to 0.2%.
    """
    expected = float(law.loss(prediction["n_params"], prediction["tokens"]))
    return check_number(answer, expected, rel=0.002, name="my_loss_prediction", unit="nats/token",
                        hint="closing_law.loss(closing_pred['n_params'], closing_pred['tokens']).")
