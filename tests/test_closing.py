"""Notebook 04's closing pair, planned from the shipped law of notebook 02."""
import math

import pytest

import cot_lab as cl
from cot_lab.core import results
from cot_lab.core import shipped as sh
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


def test_at_the_break_even_both_models_cost_the_same_over_their_lives(pair):
    t = pair.break_even_inference_tokens

    def lifetime(model, served):  # trainer's FLOPs to train + a forward pass (a third of them) per served token
        return model.flops + served * cl.flops_per_token(model.config) / 3

    big, small = pair.chinchilla, pair.overtrained
    # by hand: the extra training FLOPs over the FLOPs saved per served token
    by_hand = (small.flops - big.flops) / ((cl.flops_per_token(big.config) - cl.flops_per_token(small.config)) / 3)
    assert t == pytest.approx(by_hand, rel=1e-12) and 0 < t < math.inf
    assert lifetime(small, t) == pytest.approx(lifetime(big, t), rel=1e-12)
    assert lifetime(small, t / 2) > lifetime(big, t / 2) and lifetime(small, 2 * t) < lifetime(big, 2 * t)


def test_the_lifetime_optimum_reaches_the_small_rung_after_the_break_even(law, pair):
    t = pair.optimal_from_inference_tokens
    fpt = cl.ladder_flops_per_token()
    def n_opt(served):
        return cl.lifetime_optimum(law, loss=pair.target_loss, inference_tokens=served, flops_per_token=fpt).n_params

    # the optimum crosses the rung there; to 0.5%, as the trainer's count has a kink at each rung and N_opt steps
    # across it rather than through it (test_the_big_rung_is_compute_optimal_for_the_target)
    assert n_opt(t) == pytest.approx(pair.overtrained.n_params, rel=5e-3)
    assert n_opt(t / 1.05) > pair.overtrained.n_params > n_opt(t * 1.05)
    # before it, sizes between the rungs are the optimum: the two-model break-even comes first
    assert pair.break_even_inference_tokens < t
    assert pair.overtrained.n_params < n_opt(t / 2) < pair.chinchilla.n_params


def test_bad_rungs_are_refused(law):
    with pytest.raises(ValueError, match="small_rung"):
        closing.closing_pair(law, big_rung=1, small_rung=2)
    with pytest.raises(ValueError, match="cannot reach"):
        closing.closing_pair(law, big_rung=6, small_rung=0)


def test_shipped_specs_are_the_planned_pair(pair):
    for model in pair.models:
        spec = sh.SPECS[closing.SHIPPED[model.role]]
        assert (spec.d_model, spec.n_layer, spec.seq_len, spec.corpus) == (
            model.config.d_model, model.config.n_layer, 128, "synthetic-v3")
        assert spec.n_head == model.config.n_head and spec.flops == pytest.approx(model.flops, rel=1e-3)


def test_both_shipped_models_reach_the_target_within_3_percent(pair):
    # 3%: the standard notebook 02 holds the law's held-out prediction to
    for model in pair.models:
        _, run = cl.shipped_model(closing.SHIPPED[model.role])
        assert run.status == "ok" and run.n_params == model.n_params
        assert run.final_val_loss == pytest.approx(pair.target_loss, rel=0.03), model.role


