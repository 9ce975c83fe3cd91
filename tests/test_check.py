"""Exercise checkers: verdicts, directions, hints, and never the expected value."""
import ast
import html as html_lib
import inspect
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.budgets import checks as budget_checks
from cot_lab.ui import checks as check

CFG = cl.ModelConfig(d_model=64, n_layer=2, n_head=4, vocab_size=512, seq_len=64)


def test_right_answer_passes_within_relative_tolerance():
    result = check.check_number(104.0, 100.0, rel=0.05, name="x")
    assert result.passed and bool(result)
    assert result.message == "✅ x is right: within 5% of the expected value."


def test_too_high_says_direction_size_and_share_in_the_answers_terms_but_not_the_answer():
    result = check.check_number(123.0, 100.0, rel=0.05, hint="look at the units", name="x", unit="tokens")
    assert not result.passed and not bool(result)
    assert result.verdict == "❌ x is too high by 23 tokens (23% of the expected value); it must be within 5% of the expected value."
    assert result.hint == "look at the units" and "\n\nHint: look at the units" in str(result)
    assert "100" not in result.message


def test_too_low_small_miss_gets_two_significant_digits():
    result = check.check_number(0.9352, 1.0, rel=0.01)
    assert not result.passed
    assert "too low by 0.065 (6.5% of the expected value)" in result.message
    assert "1.0" not in result.message.replace("1%", "")


def test_a_miss_of_3600x_is_a_factor_not_a_percentage():
    # seconds given where hours were asked: 3,600x too small, which "too low by about 100%" hid
    small = check.check_number(2.5, 2.5 * 3600, rel=0.02, name="hours", unit="h")
    assert not small.passed
    assert small.verdict == "❌ hours is about 3,600x too small; it must be within 2% of the expected value."
    large = check.check_number(3e12, 1e9, rel=0.02)
    assert "is about 3,000x too large" in large.verdict and "%" not in large.verdict.split(";")[0]
    assert "is about 3x too large" in check.check_number(3.0, 1.0, rel=0.02).verdict
    assert "too high by 1.9 (190% of the expected value)" in check.check_number(2.9, 1.0, rel=0.02).verdict


def test_wrong_sign_and_zero_answers_do_not_reveal_the_value():
    assert "has the wrong sign (negative" in check.check_number(-1.0, 2.5, rel=0.1).verdict
    zero = check.check_number(0, 2.5, rel=0.1)
    assert "is zero (the expected value is not)" in zero.verdict and "2.5" not in zero.message


@pytest.mark.parametrize("answer, rel, words", [
    (7.0, 0.0, "it matches exactly"),
    (7.0003, 1e-4, "it matches to 4 significant digits"),
    (7.01, 0.002, "within 0.2% of the expected value"),
])
def test_a_right_answer_never_reads_within_0_percent(answer, rel, words):
    result = check.check_number(answer, 7.0, rel=rel, name="x")
    assert result.passed and result.message == f"✅ x is right: {words}."
    assert "0%" not in result.message.replace("0.2%", "")


def test_a_near_miss_of_a_tight_tolerance_shows_the_tolerance_with_its_digits():
    result = check.check_number(7.03, 7.0, rel=0.002)
    assert not result.passed and result.verdict.endswith("it must be within 0.2% of the expected value.")
    assert "within 0%" not in result.verdict


EXPECTED = 7.389056  # e^2: digits that no error below can spell by accident


@pytest.mark.parametrize("answer", [0.0, -1.0, 0.5 * EXPECTED, 0.9 * EXPECTED, 1.001 * EXPECTED, 1.5 * EXPECTED,
                                    10 * EXPECTED, EXPECTED / 3600])
def test_no_message_contains_the_expected_value(answer):
    result = check.check_number(answer, EXPECTED, rel=0.01, name="x", unit="nats", hint="think about e")
    for shown in (f"{EXPECTED:.4g}", f"{EXPECTED:.3g}", f"{EXPECTED:.2g}", f"{EXPECTED:.1f}"):
        assert shown not in result.message and shown not in result._repr_html_()


def test_absolute_tolerance_and_zero_expected():
    assert check.check_number(0.004, 0.0, abs=0.01).passed
    result = check.check_number(-0.5, 0.0, abs=0.01, unit="nats")
    assert not result.passed and "too low" in result.message and "0.01 nats" in result.message


def test_either_tolerance_is_enough():
    assert check.check_number(10.4, 10.0, rel=0.01, abs=0.5).passed
    assert not check.check_number(10.6, 10.0, rel=0.01, abs=0.5).passed


@pytest.mark.parametrize("answer, words", [
    (None, "Fill in"), (..., "Fill in"), (float("nan"), "not a finite number"), (math.inf, "not a finite number"),
    ("4.2", "is a str, not a number"), (True, "is a bool, not a number"), ([4.2], "is a list, not a number"),
])
def test_non_numbers_get_a_message_not_an_exception(answer, words):
    result = check.check_number(answer, 4.2, rel=0.1, name="my_answer")
    assert not result.passed
    assert words in result.message and "my_answer" in result.message


def test_numpy_numbers_are_numbers():
    assert check.check_number(np.float32(4.2), 4.2, rel=0.01).passed
    assert check.check_number(np.int64(100), 100, rel=0.01).passed


@pytest.mark.parametrize("kwargs, words", [
    (dict(), "give a tolerance"), (dict(rel=-0.1), "rel=-0.1"), (dict(abs=math.nan), "abs=nan"),
])
def test_checker_misuse_raises_value_error(kwargs, words):
    with pytest.raises(ValueError, match=words):
        check.check_number(1.0, 1.0, **kwargs)
    with pytest.raises(ValueError, match="expected=nan"):
        check.check_number(1.0, math.nan, rel=0.1)


def test_params_checker():
    n = cl.count_params(CFG)
    assert budget_checks.params(n.total, CFG).passed
    result = budget_checks.params(n.non_embedding, CFG)  # the classic mistake: forgetting the embedding
    assert not result.passed and "too low" in result.message and "embedding" in result.message
    assert str(n.total) not in result.message and f"{n.total:,}" not in result.message


def test_tokens_checker():
    flops = 1e12
    exact = flops / cl.flops_per_token(CFG)
    assert budget_checks.tokens(exact * 1.01, CFG, flops).passed
    result = budget_checks.tokens(exact * 2, CFG, flops)
    assert not result.passed and "too high by" in result.verdict and "(100% of the expected value)" in result.verdict
    assert "tokens (100%" in result.verdict and "6 FLOPs" in result.hint


def test_loss_prediction_uses_the_size_of_the_change():
    # baseline 5.0 -> measured 4.8: the change is 0.2, so the tolerance is 0.06 nats
    assert check.loss_prediction(4.85, 4.8, baseline=5.0, floor=3.0).passed
    assert check.loss_prediction(4.75, 4.8, baseline=5.0, floor=3.0).passed
    high = check.loss_prediction(4.9, 4.8, baseline=5.0, floor=3.0)
    assert not high.passed and "too high by 0.1 nats/token" in high.verdict and "Hint:" in high.message
    low = check.loss_prediction(4.6, 4.8, baseline=5.0, floor=3.0)
    assert not low.passed and "too low by 0.2 nats/token" in low.verdict and "never all of it" in low.hint
    for result in (high, low):
        assert "4.8" not in result.message
        assert "within 0.06 nats/token (30% of the measured change from the first run)" in result.verdict


def test_loss_prediction_wrong_by_13_percent_says_error_and_tolerance_in_one_unit():
    # the case: 13% of the loss was compared with 30% of the change. 0.6 / 4.6 = 13.04%; 0.3 x 0.2 = 0.06
    result = check.loss_prediction(4.0, 4.6, baseline=4.8, floor=3.0)
    assert not result.passed
    assert result.verdict == ("❌ Your prediction is too low by 0.6 nats/token (13% of the measured loss); "
                              "it must be within 0.06 nats/token (30% of the measured change from the first run).")


def test_loss_prediction_off_by_a_factor():
    result = check.loss_prediction(4.6 / 3600, 4.6, baseline=4.8)
    assert "is about 3,600x too small" in result.verdict and "%" not in result.verdict.split(";")[0]


def test_loss_prediction_has_a_minimum_tolerance_and_an_absolute_mode():
    assert check.loss_prediction(4.815, 4.8, baseline=4.801).passed  # a tiny change still allows 0.02 nats
    tiny = check.loss_prediction(4.83, 4.8, baseline=4.801)
    assert "within 0.02 nats/token (the least allowed: 30% of the measured change" in tiny.verdict
    assert check.loss_prediction(4.81, 4.8).passed
    absolute = check.loss_prediction(4.83, 4.8)
    assert not absolute.passed and absolute.verdict.endswith("it must be within 0.02 nats/token.")


def test_loss_prediction_below_the_floor_always_fails():
    result = check.loss_prediction(2.5, 2.6, floor=3.0)
    assert not result.passed and "below the entropy floor 3.000" in result.message


def test_loss_prediction_bad_inputs():
    assert "Fill in" in check.loss_prediction(None, 4.8).message
    assert "not a number" in check.loss_prediction("4.8", 4.8).message
    with pytest.raises(ValueError, match="measured=nan"):
        check.loss_prediction(4.8, math.nan)


def test_result_displays_as_escaped_html():
    result = check.CheckResult(False, "❌ a <b> & c\nd", "e < f")
    html = result._repr_html_()
    assert "&lt;b&gt; &amp; c<br>d" in html and "cot-lab-check" in html
    assert "<details><summary>Hint</summary>e &lt; f</details>" in html
    assert str(result) == result.message == "❌ a <b> & c\nd\n\nHint: e < f"


def visible_html(result) -> str:
    """The HTML a notebook shows before the student opens anything: all but the <details> element."""
    return re.sub(r"<details>.*?</details>", "", result._repr_html_(), flags=re.DOTALL)


@pytest.mark.parametrize("result", [
    check.check_number(5.0, 1.0, rel=0.1, hint="count the zeros"),
    check.choice("b", "a", ("a", "b"), hint="count the zeros"),
    check.loss_prediction(4.0, 4.6, baseline=4.8),
], ids=["number", "choice", "loss"])
def test_the_hint_is_folded_away_until_asked(result):
    hint = result.hint
    assert hint and "<details><summary>Hint</summary>" in result._repr_html_()
    assert html_lib.escape(hint) in result._repr_html_()
    assert hint[:12] not in visible_html(result) and "Hint" not in visible_html(result)


def test_a_passed_check_has_no_hint():
    assert "<details>" not in check.check_number(1.0, 1.0, rel=0.1, hint="x")._repr_html_()


def test_is_answered(capsys):
    assert check.is_answered(4.2, "my_prediction")
    assert capsys.readouterr().out == ""
    assert not check.is_answered(None, "my_prediction")
    assert "Fill in my_prediction" in capsys.readouterr().out
    assert not check.is_answered("x", "my_prediction")
    assert "not a number" in capsys.readouterr().out


# ------------------------------------------------------------------ the notebooks' named checkers


def test_twice_the_budget_prediction_compares_with_the_second_run():
    from cot_lab.start import checks as start_checks

    first, second = SimpleNamespace(final_val_loss=4.8), SimpleNamespace(final_val_loss=4.6)
    assert start_checks.twice_the_budget_prediction(4.65, first, second, floor=3.0).passed  # 0.05 <= 0.3 x 0.2
    miss = start_checks.twice_the_budget_prediction(4.7, first, second, floor=3.0)
    assert not miss.passed and "too high by 0.1 nats/token" in miss.verdict
    assert "below the entropy floor" in start_checks.twice_the_budget_prediction(2.9, first, second, floor=3.0).verdict


def test_budget_exercise_checkers_for_tokens_and_the_accounting_choice():
    # 100 H100-SXM hours at 40% MFU, from the datasheet's 989.4 TFLOP/s dense BF16 peak
    flops = 989.4e12 * 0.4 * 3600 * 100
    exact = flops / cl.flops_per_token(CFG)
    assert budget_checks.tokens_from_gpu_hours(exact * 1.015, CFG, "H100-SXM", hours=100, mfu=0.4).passed
    assert not budget_checks.tokens_from_gpu_hours(exact * 1.03, CFG, "H100-SXM", hours=100, mfu=0.4).passed
    assert budget_checks.most_flops_at_long_context(" Chinchilla ").passed
    wrong = budget_checks.most_flops_at_long_context("kaplan")
    assert not wrong.passed and "chinchilla" not in wrong.verdict and "QK" in wrong.hint


def test_scaling_exercise_checkers():
    from cot_lab.scaling import checks as scaling_checks

    fit = SimpleNamespace(approach2={"N_opt": np.array([2e4, 6e4, 1.5e5])})
    assert scaling_checks.optimal_size_answer(1.2e5, fit).passed  # 20% under the star, inside 35%
    far = scaling_checks.optimal_size_answer(1.5e4, fit)
    assert not far.passed and "is about 10x too small" in far.verdict and "log axis" in far.hint
    assert scaling_checks.growth_answer(10.0).passed  # 100^0.5, by hand
    assert "is about 10x too large" in scaling_checks.growth_answer(100.0).verdict
    law = SimpleNamespace(loss=lambda n, d: 2.0 + 100 / n ** 0.5 + 100 / d ** 0.5)
    assert scaling_checks.closing_loss_answer(3.1, law, 10_000, 1e6).passed  # 2 + 100/100 + 100/1000 = 3.1
    near = scaling_checks.closing_loss_answer(3.11, law, 10_000, 1e6)
    assert not near.passed and "too high by 0.01 nats/token (0.32% of the expected value)" in near.verdict
    assert near.verdict.endswith("within 0.2% of the expected value.")
    # exercise 3: an interval (0.42, 0.61) contains 0.5 and excludes 0.73 (read by hand)
    interval = SimpleNamespace(approach3=SimpleNamespace(intervals={"a": (0.42, 0.61)}))
    assert scaling_checks.interval_answer(True, True, interval).passed
    wrong = scaling_checks.interval_answer(True, False, interval)
    assert not wrong.passed and "interval_excludes_kaplan" in wrong.verdict and "0.61" not in wrong.verdict
    assert "Fill in interval_contains_chinchilla" in scaling_checks.interval_answer(None, True, interval).verdict
    wide = SimpleNamespace(approach3=SimpleNamespace(intervals={"a": (0.3, 0.8)}))
    assert scaling_checks.interval_answer(True, False, wide).passed


def test_e_gap_checker_scores_the_floor_itself(synthetic):
    from cot_lab.scaling import checks as scaling_checks

    rows = synthetic.val_batch(8, 32).numpy()
    # the floor by another road: -log of each next token's probability under the language's next-token
    # distribution given its prefix (not corpus.score, which the checker uses), averaged over the rows
    p = [synthetic.next_token_distribution(rows[:, :t])[np.arange(len(rows)), rows[:, t]] for t in range(1, 33)]
    floor = float(np.mean(-np.log(p)))
    fit = SimpleNamespace(approach3=SimpleNamespace(E=floor + 0.25))
    assert scaling_checks.e_gap_answer(0.25, fit, synthetic, 8, 32).passed
    assert not scaling_checks.e_gap_answer(0.26, fit, synthetic, 8, 32).passed


def test_compress_exercise_checkers_measure_the_model_passed_in():
    import torch

    from cot_lab.compress import checks as compress_checks

    model = torch.nn.Sequential(torch.nn.Linear(100, 100, bias=False), torch.nn.Linear(100, 50, bias=False))
    with torch.no_grad():
        model[0].weight[:, :50] = 0  # half pruned: the dense file stores the zeros all the same
    n = 100 * 100 + 100 * 50
    assert compress_checks.params_after_mlp_answer(n, model).passed
    assert not compress_checks.params_after_mlp_answer(n - 100, model).passed
    assert compress_checks.pruned_file_bytes_answer(4 * n, model).passed  # fp32, header ignored
    halved = compress_checks.pruned_file_bytes_answer(4 * n * 0.75, model)  # "the zeros take no room"
    assert not halved.passed and "too low by" in halved.verdict and "does not shrink" in halved.hint


# ------------------------------------------------------------------ the notebooks keep answers and hints out of view

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
# The kit's generic checkers take the expected value (or the measurement) as an argument: a notebook cell
# that calls one shows the student the expression of the answer, so notebooks call their topic's named ones.
GENERIC_CHECKERS = {name for name, fn in inspect.getmembers(check, inspect.isfunction)
                    if {"expected", "measured"} & set(inspect.signature(fn).parameters)}


def answer_leaks(source: str) -> list[str]:
    """What in one code cell's source shows an expected value or a hint: a `hint=` argument, a generic checker call."""
    leaks = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        leaks += [f"hint= in line {node.lineno}" for kw in node.keywords if kw.arg == "hint"]
        called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if called in GENERIC_CHECKERS:
            leaks.append(f"{called}(...) with its expected value in line {node.lineno}")
    return leaks


def test_the_scan_finds_a_leak():
    assert {"check_number", "loss_prediction", "choice"} <= GENERIC_CHECKERS
    assert answer_leaks("checks.check_number(x, fit.N[-1], rel=0.3)") == ["check_number(...) with its expected value in line 1"]
    assert answer_leaks("show(checks.optimal_size_answer(x, fit, hint='read the star'))") == ["hint= in line 1"]
    assert answer_leaks("checks.optimal_size_answer(x, fit)") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_notebook_cell_shows_an_expected_value_or_a_hint(path):
    assert NOTEBOOKS, "no notebooks found"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        # magics and shell lines are not Python; the checker calls never are either
        python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
        assert not answer_leaks(python), f"{path.name} cell {index}: {answer_leaks(python)}"
        assert "hint=" not in source, f"{path.name} cell {index} has hint= in its source"
