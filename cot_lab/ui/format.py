"""How panels write numbers for people: sizes, durations, byte counts, and a warning colour."""
from __future__ import annotations

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
