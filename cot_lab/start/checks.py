"""Notebook 00's exercise checks: predict the loss of a bigger budget before you train it."""
from __future__ import annotations

from cot_lab.ui.checks import CheckResult, check_number, is_answered, loss_prediction

__all__ = ['CheckResult', 'check_number', 'is_answered', 'loss_prediction']
