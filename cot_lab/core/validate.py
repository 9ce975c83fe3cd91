"""The argument checks every public function uses: one rule for bools, numpy scalars and NaN everywhere.

Each raises `ValueError` naming the argument, the value it got and what would work. A bool is never a
number here (True is an int in Python, but `batch_size=True` is a mistake); numpy scalars are numbers.
"""
from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


def _hint(hint: str) -> str:
    return f"; {hint}" if hint else ""


def is_integer(value) -> bool:
    """True for Python and numpy integers, False for bools and everything else."""
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """True for finite Python and numpy reals, False for bools, NaN, infinities and everything else."""
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def integer(name: str, value, *, low: int = 1, high: int | None = None, hint: str = "") -> int:
    """`value` as an int in [low, high]; ValueError naming `name` otherwise."""
    if not is_integer(value) or value < low or (high is not None and value > high):
        span = f"in {low}..{high}" if high is not None else ("a positive integer" if low == 1 else
                                                               "a non-negative integer" if low == 0 else f">= {low}")
        what = span if span.startswith("a ") else f"an integer {span}"
        raise ValueError(f"{name}={value!r} must be {what}{_hint(hint)}")
    return int(value)


def number(name: str, value, *, low: float = 0.0, high: float = math.inf, low_open: bool = True,
           high_open: bool = False, hint: str = "") -> float:
    """`value` as a finite float in the interval from `low` to `high` (open at low by default)."""
    ok = is_number(value)
    if ok:
        v = float(value)
        ok = (v > low if low_open else v >= low) and (v < high if high_open or high == math.inf else v <= high)
    if not ok:
        lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
        what = ("a positive finite number" if (low, low_open, high) == (0.0, True, math.inf)
                else f"a finite number in {lo}{low:g}, {high:g}{hi}")
        raise ValueError(f"{name}={value!r} must be {what}{_hint(hint)}")
    return float(value)


def fraction(name: str, value, *, upper: float = 1.0, hint: str = "") -> float:
    """`value` as a float in [0, upper): a share of something that cannot be all of it."""
    return number(name, value, low=0.0, low_open=False, high=upper, high_open=True, hint=hint)


def one_of(name: str, value, options) -> str:
    """`value` if it is one of `options` (compared exactly), else ValueError listing them."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}={value!r} is not known; use one of {', '.join(map(repr, options))}")
    return value


def positive_array(name: str, value, what: str) -> np.ndarray:
    """`value` as a float array of positive finite numbers (`what` says their unit), non-empty."""
    arr = np.asarray(value, dtype=float)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = arr[~(np.isfinite(arr) & (arr > 0))] if arr.size else arr
        raise ValueError(f"{name} must be positive and finite ({what}); "
                         f"got {bad[:5].tolist() if arr.size else 'an empty array'}")
    return arr
