"""Critical batch size (McCandlish et al. 2018; Zhang et al. 2024), wasted compute, DeepSeek's laws."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.optimize import brentq

import cot_lab as cl
from cot_lab.hparams.critical import critical_batch, fit_step_tradeoff, steps_to_loss, zhang_critical_batch
from cot_lab.hparams.deepseek import deepseek_batch_tokens, deepseek_lr, extrapolated
from cot_lab.hparams.wasted import compute_multiplier

S_MIN, B_NOISE = 1000.0, 50.0


def mccandlish_steps(b):
    return S_MIN * (1 + B_NOISE / np.asarray(b, float))


def test_the_step_tradeoff_fit_recovers_known_constants():
    batches = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    s_min, e_min = fit_step_tradeoff(batches, mccandlish_steps(batches))
    assert s_min == pytest.approx(S_MIN, rel=1e-9) and e_min / s_min == pytest.approx(B_NOISE, rel=1e-9)
    # the trade-off itself: (S/S_min - 1)(E/E_min - 1) = 1 at every batch
    for b in batches:
        s = mccandlish_steps(b)
        assert (s / s_min - 1) * (s * b / e_min - 1) == pytest.approx(1.0, rel=1e-9)


def test_zhang_critical_batch_is_where_steps_exceed_linear_scaling_by_20_percent():
    # on S(B) = S_min (1 + Bn / B) from B0 = 1: S(B) B / (S(B0) B0) = (B + Bn) / (1 + Bn) = 1.2 at B = 1.2 + 0.2 Bn
    batches = 2.0 ** (np.arange(0, 65) / 8)  # 1 to 256, 8 per octave
    assert zhang_critical_batch(batches, mccandlish_steps(batches)) == pytest.approx(1.2 + 0.2 * B_NOISE, rel=5e-3)
    assert zhang_critical_batch([1, 2, 4], mccandlish_steps([1, 2, 4])) == math.inf  # never 20% over here
    # a batch that never reaches the target bounds it from above
    assert zhang_critical_batch([1, 2, 4], [100.0, 50.0, math.inf]) == 4.0


def test_steps_to_loss_interpolates_between_evaluations():
    curve = [[0, 0, 5.0], [10, 100, 3.0], [20, 200, 2.0]]
    assert steps_to_loss(curve, 2.5) == pytest.approx(15.0)
    assert steps_to_loss(curve, 5.0) == 0.0
    assert steps_to_loss(curve, 1.0) == math.inf


def test_critical_batch_from_runs():
    def run(b):  # a loss that falls linearly in examples seen, up to the McCandlish steps at loss 3.0
        s = float(mccandlish_steps(b))
        curve = [[k * s / 4, 0, 4.0 - k / 4] for k in range(0, 7)]  # loss 3.0 at step s
        return SimpleNamespace(hparams={"batch_size": b}, config=SimpleNamespace(seq_len=128), val_curve=curve)

    result = critical_batch([run(b) for b in (64, 2, 8, 32, 16, 4)], 3.0)
    assert result.batch_sizes == (2, 4, 8, 16, 32, 64)
    assert result.mccandlish == pytest.approx(B_NOISE, rel=1e-9) and result.s_min == pytest.approx(S_MIN, rel=1e-9)
    frame = result.to_frame()
    assert list(frame["tokens"]) == pytest.approx([float(mccandlish_steps(b)) * b * 128 for b in result.batch_sizes])
    with pytest.raises(ValueError, match="at least 3"):
        critical_batch([run(2), run(4)], 3.0)


def test_compute_multiplier_is_1_at_the_best_setting_and_grows_away_from_it():
    law = cl.ScalingLaw(E=1.8, A=400.0, B=2000.0, alpha=0.4, beta=0.5)
    n, tokens = 1e5, 4e6
    best = law.loss(n, tokens) + 0.01  # a tuned run a little off the law: the shift takes it out
    assert compute_multiplier(law, tokens=tokens, loss=best, best_loss=best) == pytest.approx(1.0, abs=1e-12)
    worse = [compute_multiplier(law, tokens=tokens, loss=best + d, best_loss=best) for d in (0.01, 0.05, 0.2)]
    assert 1.0 < worse[0] < worse[1] < worse[2]
    # by a root of the law itself: the tokens at which the (shifted) law reaches the worse loss
    needed = math.exp(brentq(lambda x: law.loss(n, math.exp(x)) + 0.01 - (best + 0.05), 0.0, math.log(tokens)))
    assert worse[1] == pytest.approx(tokens / needed, rel=1e-9)
    with pytest.raises(ValueError, match="law"):
        compute_multiplier("chinchilla", tokens=tokens, loss=best, best_loss=best)
    with pytest.raises(ValueError, match="tokens"):
        compute_multiplier(law, tokens=0, loss=best, best_loss=best)


def test_deepseek_laws_and_where_they_are_extrapolated():
    assert deepseek_lr(1e17) == pytest.approx(0.3118 * 1e17 ** -0.125, rel=1e-12)
    assert deepseek_batch_tokens(1e17) == pytest.approx(0.2920 * 1e17 ** 0.3271, rel=1e-12)
    assert 1e5 < deepseek_batch_tokens(1e17) < 1.1e5  # about 106K tokens at their smallest budget
    assert list(extrapolated([1e12, 1e17, 1e20])) == [True, False, False]
    assert deepseek_lr(np.array([1e12, 1e13])).shape == (2,)
    with pytest.raises(ValueError, match="flops"):
        deepseek_lr(-1.0)


def test_no_critical_batch_is_claimed_where_every_batch_scales_perfectly():
    # steps falling at least as fast as 1/B: no hyperbola with S_min > 0 fits, so B_crit lies beyond them
    batches = [1, 2, 4, 8]
    steps = [8000.0 / b ** 1.1 for b in batches]
    runs = [SimpleNamespace(hparams={"batch_size": b}, config=SimpleNamespace(seq_len=128),
                            val_curve=[[0, 0, 4.0], [2 * s, 0, 2.0]]) for b, s in zip(batches, steps)]
    result = critical_batch(runs, 3.0)
    assert result.s_min < 0 and result.mccandlish == math.inf
    assert result.zhang == math.inf  # never 20% over linear scaling either
