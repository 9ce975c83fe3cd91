"""Exercise checkers: they say whether an answer is within tolerance, which way and by how much it is off.

A checker never prints the expected value. It says what was compared in the answer's own terms: the
absolute error in the answer's unit, the relative error, and the tolerance in the same unit as the
error shown; an answer off by 3x or more is off by a factor, not a percentage. Each returns a
`CheckResult` (truthy when passed) that shows itself as a coloured line in a notebook, its hint
folded away until the student opens it, and as plain text elsewhere.

The notebooks call the named checkers of their topic (`cot_lab.scaling.checks.optimal_size_answer`, ...),
which compute the expected value and hold the hint, so that neither stands in a cell the student reads.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from numbers import Real


FILL_IN = "✏️"
# Off by this factor or more, a percentage stops meaning anything ("too low by 100%"): say the factor.
FACTOR_FROM = 3.0
# A relative tolerance below this reads as significant digits ("matches to 4 significant digits").
DIGITS_BELOW = 1e-3


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: `passed`, the `verdict` line and a `hint`, neither containing the answer."""

    passed: bool
    verdict: str
    hint: str = ""

    @property
    def message(self) -> str:
        """The verdict, then the hint after a blank line: what plain text (print, a terminal) shows."""
        return self.verdict + (f"\n\nHint: {self.hint}" if self.hint else "")

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#b35900"
        body = html.escape(self.verdict).replace("\n", "<br>")
        # <details> keeps the hint folded: a student who wants to think first does not read it by accident.
        hint = (f'<details><summary>Hint</summary>{html.escape(self.hint)}</details>' if self.hint else "")
        return f'<div class="cot-lab-check" style="color:{colour};font-family:sans-serif">{body}{hint}</div>'


def as_number(answer, name: str) -> tuple[float | None, CheckResult | None]:
    """answer as a finite float, or a CheckResult that says what to fix."""
    if answer is None or answer is Ellipsis:
        return None, CheckResult(False, f"{FILL_IN} Fill in {name} (a number), then run the cell again.")
    if isinstance(answer, bool) or not isinstance(answer, Real):
        kind = type(answer).__name__
        return None, CheckResult(False, f"❌ {name}={answer!r} is a {kind}, not a number; write a number such as 4.2 "
                                        f"(no quotes).")
    value = float(answer)
    if not math.isfinite(value):
        return None, CheckResult(False, f"❌ {name}={answer!r} is not a finite number; write a number such as 4.2.")
    return value, None


def is_answered(answer, name: str = "answer") -> bool:
    """True if `answer` is a finite number; otherwise displays what to fix and returns False."""
    _, problem = as_number(answer, name)
    if problem is not None:
        show(problem)
    return problem is None


def percent(fraction: float) -> str:
    """|fraction| as a percentage, two significant digits below 10% so never rounded to '0%': '0.2%', '30%'."""
    pct = 100 * math.fabs(fraction)
    return f"{pct:,.0f}%" if pct >= 10 else f"{float(f'{pct:.2g}'):g}%"


def amount(x: float, unit: str = "") -> str:
    """|x| with two significant digits and its unit: '0.21 nats/token', '12,000 parameters', '1.5e+10 tokens'."""
    x = math.fabs(x)
    if x == 0:
        text = "0"
    elif 1e-3 <= x < 1e6:
        rounded = float(f"{x:.2g}")
        text = f"{rounded:,.0f}" if rounded >= 100 else f"{rounded:g}"
    else:
        text = f"{x:.1e}"
    return f"{text} {unit}".rstrip()


def factor(ratio: float) -> str:
    """A ratio >= 1 as a person says it, two significant digits: '3.4x', '3,600x', '2.0e+09x'."""
    rounded = float(f"{ratio:.2g}")
    if rounded < 10:
        return f"{rounded:g}x"
    return f"{rounded:,.0f}x" if rounded < 1e6 else f"{rounded:.1e}x"


def miss(value: float, expected: float, unit: str = "", *, of: str = "the expected value") -> str:
    """How `value` misses `expected`, never saying `expected`: a factor when 3x or more off, else size and share.

    'is about 3,600x too small', 'has the wrong sign', 'is too low by 0.21 nats/token (4.5% of the measured loss)'.
    With the error's size a student could work the value out from their answer; it is shown all the same,
    because an error in the answer's own terms is what tells a slip of units from a slip of arithmetic.
    """
    if value * expected < 0:
        return f"has the wrong sign ({'positive' if value > 0 else 'negative'}; {of} is not)"
    if value == 0 and expected != 0:  # its error would be the expected value itself
        return f"is zero ({of} is not)"
    if value != 0 and expected != 0:
        ratio = value / expected
        if ratio >= FACTOR_FROM:
            return f"is about {factor(ratio)} too large"
        if ratio <= 1 / FACTOR_FROM:
            return f"is about {factor(1 / ratio)} too small"
    off = value - expected
    share = f" ({percent(off / expected)} of {of})" if expected != 0 else ""
    return f"is too {'high' if off > 0 else 'low'} by {amount(off, unit)}{share}"


def show(result: CheckResult) -> None:
    try:
        from IPython.display import display

        display(result)
    except ImportError:  # plain Python: IPython is optional outside notebooks
        print(result.message)


def _tolerance(rel: float | None, abs: float | None, unit: str) -> str:
    """The tolerance in the terms the error is shown in: a share of the expected value and/or an amount in unit."""
    parts = [f"{percent(rel)} of the expected value" if rel is not None else "",
             amount(abs, unit) if abs is not None else ""]
    words = [p for p in parts if p]
    return words[0] if len(words) == 1 else f"{words[0]} or {words[1]}, whichever is more"


def _agreement(rel: float | None, abs: float | None, allowed: float, unit: str) -> str:
    """What a right answer was right to: exactly, to N significant digits, or within the tolerance."""
    if allowed == 0:
        return "it matches exactly"
    if rel is not None and 0 < rel < DIGITS_BELOW and (abs is None or abs == 0):
        return f"it matches to {math.floor(-math.log10(rel))} significant digits"
    return f"within {_tolerance(rel, abs, unit)}"


def check_number(answer, expected: float, *, rel: float | None = None, abs: float | None = None,
                 hint: str = "", name: str = "answer", unit: str = "") -> CheckResult:
    """Is `answer` within `rel` (a fraction of `expected`) or `abs` (in `unit`) of `expected`? Never says the value."""
    if rel is None and abs is None:
        raise ValueError("give a tolerance: rel= (a fraction, e.g. 0.05) and/or abs= (in the answer's unit)")
    for tol_name, tol in (("rel", rel), ("abs", abs)):
        if tol is not None and not (isinstance(tol, Real) and math.isfinite(tol) and tol >= 0):
            raise ValueError(f"{tol_name}={tol!r} must be a finite number >= 0")
    if not (isinstance(expected, Real) and math.isfinite(expected)):
        raise ValueError(f"expected={expected!r} must be a finite number (it is what the checker compares against)")
    value, problem = as_number(answer, name)
    if problem is not None:
        return problem
    allowed = max(rel * math.fabs(expected) if rel is not None else 0.0, abs if abs is not None else 0.0)
    if math.fabs(value - expected) <= allowed:
        return CheckResult(True, f"✅ {name} is right: {_agreement(rel, abs, allowed, unit)}.")
    return CheckResult(False, f"❌ {name} {miss(value, expected, unit)}; it must be within "
                              f"{_tolerance(rel, abs, unit)}.", hint)


def loss_prediction(predicted, measured: float, *, baseline: float | None = None, floor: float | None = None,
                    share: float = 0.3, abs: float = 0.02) -> CheckResult:
    """Check a predicted validation loss (nats/token) against the measured one.

    With `baseline` (the first run's loss, before the change) the tolerance is `share` of the
    measured change, at least `abs` nats: you must get the size of the improvement right, not just
    the ballpark. Without it, the tolerance is `abs` nats. A prediction below the entropy `floor` always fails.
    """
    if not (isinstance(measured, Real) and math.isfinite(measured)):
        raise ValueError(f"measured={measured!r} must be a finite loss in nats/token (did the run diverge?)")
    value, problem = as_number(predicted, "your prediction")
    if problem is not None:
        return problem
    if floor is not None and value < floor:
        return CheckResult(False, f"❌ your prediction {value:.3f} is below the entropy floor {floor:.3f} nats/token: "
                                  "no model can beat the floor, whatever its budget.")
    unit = "nats/token"
    if baseline is None:
        tol, basis = abs, ""
    else:
        of_change = share * math.fabs(baseline - measured)
        tol = max(abs, of_change)
        basis = (f" ({percent(share)} of the measured change from the first run)" if of_change >= abs else
                 f" (the least allowed: {percent(share)} of the measured change from the first run is less)")
    tolerance = f"{amount(tol, unit)}{basis}"
    off = value - measured
    if math.fabs(off) <= tol:
        return CheckResult(True, f"✅ Good prediction: within {tolerance}.")
    if off > 0:
        hint = ("more compute lowered the loss more than you expected. Early in training the loss falls fast; "
                "look at how far the curve dropped between the first and the second half of the first run.")
    else:
        hint = ("the loss fell less than you expected. The gap above the floor shrinks like a power of the "
                "compute: doubling the budget removes only a fraction of it, never all of it.")
    return CheckResult(False, f"❌ Your prediction {miss(value, measured, unit, of='the measured loss')}; "
                              f"it must be within {tolerance}.", hint)


def choice(answer, expected: str, options, *, name: str = "answer", hint: str = "") -> CheckResult:
    """Check a multiple-choice answer (one of `options`, ignoring case and spaces); never says which is right."""
    names = [str(o) for o in options]
    if expected not in names:
        raise ValueError(f"expected={expected!r} must be one of options={names!r}")
    if answer is None or answer is Ellipsis:
        return CheckResult(False, f"{FILL_IN} Fill in {name} (one of {', '.join(map(repr, names))}), "
                                  f"then run the cell again.")
    picked = next((o for o in names if isinstance(answer, str) and answer.strip().lower() == o.lower()), None)
    if picked is None:
        return CheckResult(False, f"❌ {name}={answer!r} is not one of the options; write one of "
                                  f"{', '.join(map(repr, names))} (with quotes).")
    if picked == expected:
        return CheckResult(True, f"✅ {name} is right.")
    return CheckResult(False, f"❌ {name}={picked!r} is not it.", hint)
