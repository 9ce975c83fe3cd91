"""Notebook 02's exercise checks: numbers read off a fitted law, each within a stated tolerance."""
from __future__ import annotations

from cot_lab.ui.checks import CheckResult, check_number, is_answered

__all__ = ['CheckResult', 'check_number', 'is_answered']
