"""Notebook 03's exercise checks: numbers read off pruning and quantization measurements."""
from __future__ import annotations

from cot_lab.ui.checks import CheckResult, check_number, is_answered

__all__ = ['CheckResult', 'check_number', 'is_answered']
