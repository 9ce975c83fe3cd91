"""Notebook 04's closing pair, planned from the shipped law of notebook 02."""
import math

import pytest

import cot_lab as cl
from cot_lab.core import results
from cot_lab.inference import closing


@pytest.fixture(scope="module")
def law():
    return cl.ScalingLaw(**results.load_results("laptop")["holdout"]["fitted_law"])


@pytest.fixture(scope="module")
def pair(law):
    return closing.closing_pair(law)


def test_the_big_rung_is_compute_optimal_for_the_target(law, pair):
    big = pair.chinchilla
    assert (big.n_params, pair.overtrained.n_params) == (66_848, 33_192)
    # at the FLOPs it is trained for, the law's optimum (trainer's count) is this rung: to 0.5%, because the count
    # is interpolated between rungs and has a kink at each, so N_opt(C) steps across a rung rather than through it
    n_opt, d_opt = law.optimal(big.flops, flops_per_token=cl.ladder_flops_per_token())
    assert n_opt == pytest.approx(big.n_params, rel=5e-3) and d_opt == pytest.approx(big.tokens, rel=5e-3)
    assert big.predicted_loss == pytest.approx(pair.target_loss, abs=1e-9)


def test_the_small_rung_reaches_the_same_loss_on_more_tokens_and_more_flops(law, pair):
    small, big = pair.overtrained, pair.chinchilla
    # the iso-loss tokens by hand: B / D^beta is what is left of the loss once E and A / N^alpha are paid
    left = pair.target_loss - law.E - law.A / small.n_params ** law.alpha
    assert small.tokens == pytest.approx((law.B / left) ** (1 / law.beta), rel=1e-12)
    assert small.predicted_loss == pytest.approx(pair.target_loss, abs=1e-9)
    assert small.tokens_per_param > 10 * big.tokens_per_param and small.flops > big.flops
    assert small.flops == pytest.approx(small.tokens * cl.flops_per_token(small.config), rel=1e-12)


def test_past_the_break_even_the_small_rung_costs_less_over_its_life(pair):
    t = pair.break_even_inference_tokens
    assert 0 < t < math.inf

    def lifetime(model, served):  # trainer's FLOPs to train + a forward pass (a third of them) per served token
        return model.flops + served * cl.flops_per_token(model.config) / 3

    # at the break-even the optimum is the small rung; well past it the small rung is cheaper over its life
    assert lifetime(pair.overtrained, 10 * t) < lifetime(pair.chinchilla, 10 * t)
    assert lifetime(pair.overtrained, 0) > lifetime(pair.chinchilla, 0)


def test_bad_rungs_are_refused(law):
    with pytest.raises(ValueError, match="small_rung"):
        closing.closing_pair(law, big_rung=1, small_rung=2)
    with pytest.raises(ValueError, match="cannot reach"):
        closing.closing_pair(law, big_rung=6, small_rung=0)
