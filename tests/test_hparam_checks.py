"""Notebook 05's checkers accept the right answers (worked out another way here) and flag wrong ones."""
import cot_lab as cl
from cot_lab.hparams import checks
from cot_lab.hparams.deepseek import deepseek_batch_tokens
from cot_lab.hparams.wasted import compute_multiplier

LAW = cl.ScalingLaw(E=1.8, A=400.0, B=2000.0, alpha=0.4, beta=0.5)


def test_multiplier_checker_agrees_with_the_closed_form():
    n, tokens, best = 1e5, 4e6, 2.1
    right = compute_multiplier(LAW, tokens=tokens, loss=best + 0.05, best_loss=best)
    assert checks.multiplier_answer(right, LAW, n_params=n, tokens=tokens, loss=best + 0.05, best_loss=best)
    assert not checks.multiplier_answer(right * 1.05, LAW, n_params=n, tokens=tokens, loss=best + 0.05, best_loss=best)
    assert not checks.multiplier_answer(None, LAW, n_params=n, tokens=tokens, loss=best + 0.05, best_loss=best)


def test_critical_batch_checker_recovers_a_known_b_crit():
    steps = [1000 * (1 + 50 / b) for b in (4, 16)]  # S_min 1000, B_crit 50
    assert checks.critical_batch_answer(50.0, (4, 16), steps)
    assert not checks.critical_batch_answer(16.0, (4, 16), steps)


def test_deepseek_checker_uses_their_constants():
    assert checks.deepseek_batch_answer(deepseek_batch_tokens(1e12) / 128, 1e12, 128)
    assert not checks.deepseek_batch_answer(deepseek_batch_tokens(1e12), 1e12, 128)  # tokens, not sequences
