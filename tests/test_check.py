"""Exercise checkers: verdicts, directions, hints, and never the expected value."""
import math

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.budgets import checks as budget_checks
from cot_lab.ui import checks as check

CFG = cl.ModelConfig(d_model=64, n_layer=2, n_head=4, vocab_size=512, seq_len=64)


def test_right_answer_passes_within_relative_tolerance():
    result = check.check_number(104.0, 100.0, rel=0.05, name="x")
    assert result.passed and bool(result)
    assert result.message.startswith("✅") and "5%" in result.message


def test_too_high_says_direction_and_size_but_not_the_answer():
    result = check.check_number(123.0, 100.0, rel=0.05, hint="look at the units", name="x")
    assert not result.passed and not bool(result)
    assert "too high by about 23%" in result.message
    assert "Hint: look at the units" in result.message
    assert "100" not in result.message


def test_too_low_small_miss_gets_one_decimal():
    result = check.check_number(0.9352, 1.0, rel=0.01)
    assert not result.passed
    assert "too low by about 6.5%" in result.message
    assert "1.0" not in result.message.replace("1%", "")


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
    assert not result.passed and "too high by about 100%" in result.message and "6 FLOPs" in result.message


def test_loss_prediction_uses_the_size_of_the_change():
    # baseline 5.0 -> measured 4.8: the change is 0.2, so the tolerance is 0.06 nats
    assert check.loss_prediction(4.85, 4.8, baseline=5.0, floor=3.0).passed
    assert check.loss_prediction(4.75, 4.8, baseline=5.0, floor=3.0).passed
    high = check.loss_prediction(4.9, 4.8, baseline=5.0, floor=3.0)
    assert not high.passed and "too high" in high.message and "Hint:" in high.message
    low = check.loss_prediction(4.6, 4.8, baseline=5.0, floor=3.0)
    assert not low.passed and "too low" in low.message and "never all of it" in low.message
    for result in (high, low):
        assert "4.8" not in result.message and "0.2" not in result.message and "0.06" not in result.message


def test_loss_prediction_has_a_minimum_tolerance_and_an_absolute_mode():
    assert check.loss_prediction(4.815, 4.8, baseline=4.801).passed  # a tiny change still allows 0.02 nats
    assert check.loss_prediction(4.81, 4.8).passed
    assert not check.loss_prediction(4.83, 4.8).passed


def test_loss_prediction_below_the_floor_always_fails():
    result = check.loss_prediction(2.5, 2.6, floor=3.0)
    assert not result.passed and "below the entropy floor 3.000" in result.message


def test_loss_prediction_bad_inputs():
    assert "Fill in" in check.loss_prediction(None, 4.8).message
    assert "not a number" in check.loss_prediction("4.8", 4.8).message
    with pytest.raises(ValueError, match="measured=nan"):
        check.loss_prediction(4.8, math.nan)


def test_result_displays_as_escaped_html():
    result = check.CheckResult(False, "❌ a <b> & c\nHint: d")
    html = result._repr_html_()
    assert "&lt;b&gt; &amp; c<br>Hint: d" in html and "cot-lab-check" in html
    assert str(result) == result.message


def test_is_answered(capsys):
    assert check.is_answered(4.2, "my_prediction")
    assert capsys.readouterr().out == ""
    assert not check.is_answered(None, "my_prediction")
    assert "Fill in my_prediction" in capsys.readouterr().out
    assert not check.is_answered("x", "my_prediction")
    assert "not a number" in capsys.readouterr().out
