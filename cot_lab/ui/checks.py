"""Exercise checkers: they say whether an answer is within tolerance, which way it is off and give a hint.

A checker never prints the expected value. Each returns a `CheckResult` (truthy when passed)
that shows itself as a coloured line in a notebook and as plain text elsewhere.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from numbers import Real


FILL_IN = "✏️"


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one answer: `passed`, and a `message` for the student (never containing the answer)."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        colour = "#1a7f37" if self.passed else "#b35900"
        body = html.escape(self.message).replace("\n", "<br>")
        return f'<div class="cot-lab-check" style="color:{colour};font-family:sans-serif">{body}</div>'


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
    """|fraction| as a percentage with one significant decimal below 10%: '3.2%', '40%'."""
    fraction = math.fabs(fraction)
    return f"{fraction:.1%}" if fraction < 0.1 else f"{fraction:.0%}"


def show(result: CheckResult) -> None:
    try:
        from IPython.display import display

        display(result)
    except ImportError:  # plain Python: IPython is optional outside notebooks
        print(result.message)


def check_number(answer, expected: float, *, rel: float | None = None, abs: float | None = None,
                 hint: str = "", name: str = "answer", unit: str = "") -> CheckResult:
    """Is `answer` within `rel` (a fraction) or `abs` (in `unit`) of `expected`? Says which way, never the value."""
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
    off = value - expected
    allowed = max(rel * math.fabs(expected) if rel is not None else 0.0, abs if abs is not None else 0.0)
    tolerance = " and ".join(t for t in (f"{rel:.0%}" if rel is not None else "",
                                         f"{abs:g} {unit}".rstrip() if abs is not None else "") if t)
    if math.fabs(off) <= allowed:
        return CheckResult(True, f"✅ {name} is right (within {tolerance}).")
    direction = "too high" if off > 0 else "too low"
    if expected != 0:
        size = f"by about {percent(off / expected)}"
    else:
        size = "(the answer is zero)"
    message = f"❌ {name} is {direction} {size}; it must be within {tolerance}."
    return CheckResult(False, message + (f"\nHint: {hint}" if hint else ""))


def loss_prediction(predicted, measured: float, *, baseline: float | None = None, floor: float | None = None,
                    share: float = 0.3, abs: float = 0.02) -> CheckResult:
    """Check a predicted validation loss (nats/token) against the measured one.

    With `baseline` (the loss before the change) the tolerance is `share` of the actual change,
    at least `abs` nats: you must get the size of the improvement right, not just the ballpark.
    Without it, the tolerance is `abs` nats. A prediction below the entropy `floor` always fails.
    """
    if not (isinstance(measured, Real) and math.isfinite(measured)):
        raise ValueError(f"measured={measured!r} must be a finite loss in nats/token (did the run diverge?)")
    value, problem = as_number(predicted, "your prediction")
    if problem is not None:
        return problem
    if floor is not None and value < floor:
        return CheckResult(False, f"❌ your prediction {value:.3f} is below the entropy floor {floor:.3f} nats/token: "
                                  "no model can beat the floor, whatever its budget.")
    tol = abs if baseline is None else max(abs, share * math.fabs(baseline - measured))
    off = value - measured
    rule = f"{abs:g} nats/token" if baseline is None else f"{share:.0%} of the actual change (at least {abs:g} nats)"
    if math.fabs(off) <= tol:
        return CheckResult(True, f"✅ Good prediction: within {rule}.")
    if off > 0:
        hint = ("more compute lowered the loss more than you expected. Early in training the loss falls fast; "
                "look at how far the curve dropped between the first and the second half of the first run.")
    else:
        hint = ("the loss fell less than you expected. The gap above the floor shrinks like a power of the "
                "compute: doubling the budget removes only a fraction of it, never all of it.")
    direction = "too high" if off > 0 else "too low"
    return CheckResult(False, f"❌ Your prediction is {direction} by about {percent(off / measured)}; "
                              f"it must be within {rule}.\nHint: {hint}")


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
    return CheckResult(False, f"❌ {name}={picked!r} is not it." + (f"\nHint: {hint}" if hint else ""))
