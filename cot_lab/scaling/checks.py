"""Notebook 02's exercise checks: numbers read off a fitted law, each within a stated tolerance.

Each checker computes its expected value from the objects the notebook passes in, so neither the
expected value nor the hint stands in a cell the student reads before answering.
"""
from __future__ import annotations

from cot_lab.ui.checks import CheckResult, check_number, is_answered

__all__ = ["CheckResult", "is_answered", "optimal_size_answer", "growth_answer", "interval_answer", "e_gap_answer",
           "closing_loss_answer"]


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


def interval_answer(contains_chinchilla, excludes_kaplan, fit) -> CheckResult:
    """Check two readings of Approach 3's interval of a (exercise 3): does it contain 0.5, does it exclude 0.73?"""
    from cot_lab.ui.checks import FILL_IN

    answers = {"interval_contains_chinchilla": contains_chinchilla, "interval_excludes_kaplan": excludes_kaplan}
    missing = [name for name, value in answers.items() if not isinstance(value, bool)]
    if missing:
        return CheckResult(False, f"{FILL_IN} Fill in {' and '.join(missing)} (True or False), then run the cell again.")
    low, high = fit.approach3.intervals["a"]
    truth = {"interval_contains_chinchilla": low <= 0.5 <= high, "interval_excludes_kaplan": not low <= 0.73 <= high}
    wrong = [name for name in answers if answers[name] != truth[name]]
    if wrong:
        return CheckResult(False, f"❌ {' and '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} not what the interval says",
                           hint="an interval [low, high] contains x when low <= x <= high; read the Approach 3 line "
                                "printed in section 5.")
    return CheckResult(True, "✅ both readings match the interval")


def e_gap_answer(answer, fit, corpus, eval_sequences: int, seq_len: int) -> CheckResult:
    """Check E minus the floor on the scored rows (nats/token, exercise 4), within 0.002 nats/token.

    The floor is scored here from the corpus's exact probabilities, not read from the fit or the manifest."""
    from cot_lab.scaling.sweep_fit import paired_entropy

    floor = paired_entropy(corpus, eval_sequences, seq_len)
    return check_number(answer, fit.approach3.E - floor, abs=0.002, name="e_above_floor", unit="nats/token",
                        hint="fit.approach3.E minus the mean of corpus.score(rows) over the rows the runs were scored on.")


def closing_loss_answer(answer, law, n_params, tokens) -> CheckResult:
    """Check a loss (nats/token) predicted with `law` for `n_params` parameters trained on `tokens` tokens.

    The answer is computed, not read off a plot, so it must match to 0.2%.
    """
    expected = float(law.loss(n_params, tokens))
    return check_number(answer, expected, rel=0.002, name="my_loss_prediction", unit="nats/token",
                        hint="closing_law.loss(N, D): a law is a function of parameters and tokens.")
