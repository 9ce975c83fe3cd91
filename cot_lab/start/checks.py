"""Notebook 00's exercise check: predict the loss of twice the budget before you train it."""
from __future__ import annotations

from cot_lab.ui.checks import CheckResult, is_answered, loss_prediction

__all__ = ["CheckResult", "is_answered", "twice_the_budget_prediction"]


def twice_the_budget_prediction(answer, first_run, second_run, *, floor: float | None = None) -> CheckResult:
    """Check a predicted final validation loss (nats/token) of `second_run`, trained on twice `first_run`'s FLOPs.

    The tolerance is 30% of the measured change from the first run, at least 0.02 nats/token.
    """
    return loss_prediction(answer, second_run.final_val_loss, baseline=first_run.final_val_loss, floor=floor)
