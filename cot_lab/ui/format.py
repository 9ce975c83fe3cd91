"""How panels write numbers for people: sizes, durations, byte counts, tables, and a warning colour."""
from __future__ import annotations

import math

WARNING_COLOUR = "#c0392b"


def human(n: float) -> str:
    """A count with a K/M/B suffix and 3 significant digits: 12345 -> '12.3K'."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def duration(seconds: float) -> str:
    """Seconds as a person says them: '4.2 s', '38 s', '12.5 min', '3.1 h'."""
    if seconds < 90:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def clock(seconds: float) -> str:
    """Seconds as a stopwatch shows them: '0:07', '1:34', '1:02:03'."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def long_duration(seconds: float) -> str:
    """Like `duration` up to two days, then days, then years (a large budget on a laptop takes years)."""
    if seconds < 2 * 86400:
        return duration(seconds)
    if seconds < 365.25 * 86400:
        return f"{seconds / 86400:.3g} days"
    return f"{seconds / (365.25 * 86400):,.3g} years"


def kib(n_bytes: float) -> str:
    """A byte count in KiB with one decimal: 2048 -> '2.0 KiB'."""
    return f"{n_bytes / 1024:,.1f} KiB"


def red(text: str) -> str:
    """`text` (HTML) in the warning colour."""
    return f'<span style="color:{WARNING_COLOUR}">{text}</span>'


def scientific(x: float, digits: int = 3) -> str:
    """A number as FLOP budgets are written: 3e10, 1.25e11 (at most `digits` significant digits)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _column_decimals(values, decimals: int) -> int:
    """Decimals for a column of non-integer numbers: fewer for large values, enough for 3 digits of the smallest."""
    sizes = [abs(v) for v in values if v and math.isfinite(v)]
    if not sizes:
        return decimals
    fewer = decimals - max(0, math.floor(math.log10(max(sizes))))
    enough = 2 - math.floor(math.log10(min(sizes)))
    return min(8, max(1, fewer, enough))


def _formatter(name, values, decimals: int):
    """How to write one column (or an index) named `name`: FLOPs in e-notation, whole numbers with thousands
    separators, other numbers with a fixed number of decimals; anything else as it is."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not values or len(numbers) < len(values):
        return None
    finite = [float(v) for v in numbers if math.isfinite(v)]

    def blank_or(write):
        return lambda v: "–" if not math.isfinite(v) else write(v)

    if "flop" in str(name).lower():
        return blank_or(scientific)
    if all(v.is_integer() for v in finite):
        return blank_or(lambda v: f"{int(v):,}")
    places = _column_decimals(finite, decimals)
    return blank_or(lambda v: f"{v:,.{places}f}")


def table(frame, decimals: int = 4):
    """A copy of the DataFrame `frame` with numbers written for reading: columns whose name mentions FLOPs in
    e-notation (3e10), whole numbers with thousands separators (697,344), losses and other numbers with
    `decimals` decimals (fewer for large values, more for tiny ones), missing values as '–'.

    Columns and a named index are formatted by the same rules; text and booleans are left alone.
    """
    out = frame.copy()
    for column in out.columns:
        write = _formatter(column, out[column].tolist(), decimals)
        if write is not None:
            out[column] = [write(float(v)) for v in out[column]]
    if out.index.nlevels == 1 and out.index.name is not None:  # an unnamed index only numbers the rows
        write = _formatter(out.index.name, out.index.tolist(), decimals)
        if write is not None:
            out.index = [write(float(v)) for v in out.index]
            out.index.name = frame.index.name
    return out
