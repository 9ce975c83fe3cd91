"""MoE shapes matched to a dense model's active FLOPs: how close the match is, and the bad inputs refused."""
import pytest

import cot_lab as cl
from cot_lab.moe import expert_width, flops_mismatch, granularity_of, moe_ladder, moe_shape


@pytest.mark.parametrize("n_experts,granularity", [(1, 1), (8, 1), (8, 2), (16, 4), (64, 8)])
def test_moe_shape_matches_the_dense_active_flops_to_an_integer_expert_width(n_experts, granularity):
    for dense in cl.size_ladder()[:12]:
        moe = moe_shape(dense, n_experts=n_experts, granularity=granularity)
        assert (moe.arch, moe.n_experts, moe.top_k) == ("moe", n_experts, granularity)
        assert (moe.d_model, moe.n_layer, moe.n_head, moe.seq_len, moe.vocab_size) == \
               (dense.d_model, dense.n_layer, dense.n_head, dense.seq_len, dense.vocab_size)
        # per layer: active MLP params (top_k experts + router) vs the dense MLP, at most half a width step apart
        active_mlp = 3 * dense.d_model * granularity * moe.d_ff + dense.d_model * n_experts
        assert abs(active_mlp - 3 * dense.d_model * dense.d_ff) <= 1.5 * granularity * dense.d_model
        # and no other integer width is closer
        for other in (moe.d_ff - 1, moe.d_ff + 1):
            assert abs(3 * granularity * other + n_experts - 3 * dense.d_ff) >= \
                   abs(3 * granularity * moe.d_ff + n_experts - 3 * dense.d_ff)
        assert abs(flops_mismatch(moe, dense)) <= 0.0014 * granularity  # the bound the module states
        assert abs(cl.active_params(moe) - cl.active_params(dense)) <= 1.5 * granularity * dense.d_model * dense.n_layer
        assert granularity_of(moe, dense) == dense.d_ff / moe.d_ff
        if n_experts <= 16:  # the router takes little width: G is close to top_k (64 experts at d_ff 48 leave width 3)
            assert granularity_of(moe, dense) == pytest.approx(granularity, rel=0.12)


def test_the_match_on_a_known_rung():
    dense = cl.ModelConfig(d_model=64, n_layer=2, n_head=4)  # d_ff 176
    moe = moe_shape(dense, n_experts=8, top_k=2)
    # (3 * 176 - 8) / (3 * 2) = 86.67 -> 87; active MLP per layer 64 * (6 * 87 + 8) = 33920 against 64 * 528 = 33792
    assert moe.d_ff == 87 == expert_width(176, 64, 8, 2)
    assert cl.active_params(moe) - cl.active_params(dense) == 2 * (33920 - 33792)
    # training FLOPs: 3 (fwd + bwd) x 2 per multiply-add x 2 layers x 128 params more
    assert flops_mismatch(moe, dense) == pytest.approx(3 * 2 * 2 * 128 / cl.flops_per_token(dense))
    # 8 experts of width 87 and a router in place of one MLP of width 176, in each of 2 layers
    assert cl.count_params(moe).total - cl.count_params(dense).total == 2 * (8 * 3 * 64 * 87 + 64 * 8 - 3 * 64 * 176)
    assert granularity_of(moe, dense) == pytest.approx(2.02, abs=0.01)


def test_top_k_defaults_to_the_granularity_and_both_default_to_switch_top_one():
    dense = cl.size_ladder()[3]
    assert moe_shape(dense, n_experts=8).top_k == 1
    assert moe_shape(dense, n_experts=8, granularity=4) == moe_shape(dense, n_experts=8, top_k=4) \
        == moe_shape(dense, n_experts=8, top_k=4, granularity=4)


def test_moe_ladder_is_the_dense_ladder_rung_by_rung():
    dense, moe = cl.size_ladder(64, 512, 6), moe_ladder(n_experts=8, granularity=2, seq_len=64, rungs=6)
    assert len(moe) == 6 and [m.d_model for m in moe] == [d.d_model for d in dense]
    assert all(m == moe_shape(d, n_experts=8, granularity=2) for m, d in zip(moe, dense))


@pytest.mark.parametrize("kwargs,names", [
    (dict(n_experts=2, top_k=3), ["top_k=3", "n_experts=2"]),
    (dict(n_experts=2, granularity=4), ["top_k=4", "n_experts=2"]),
    (dict(n_experts=0), ["n_experts=0"]),
    (dict(n_experts=-4), ["n_experts=-4"]),
    (dict(n_experts=2.5), ["n_experts=2.5"]),
    (dict(n_experts=8, granularity=0), ["granularity=0"]),
    (dict(n_experts=8, granularity=1.5), ["granularity=1.5"]),
    (dict(n_experts=8, granularity=True), ["granularity=True"]),
    (dict(n_experts=8, top_k=0), ["top_k=0"]),
    (dict(n_experts=8, top_k=4, granularity=2), ["granularity=2", "top_k=4"]),
    (dict(n_experts=64, granularity=64), ["granularity=64"]),  # no expert width left at d_ff=48
])
def test_bad_routing_raises_a_value_error_naming_the_argument(kwargs, names):
    dense = cl.size_ladder()[0]  # d_model 16, d_ff 48
    with pytest.raises(ValueError) as error:
        moe_shape(dense, **kwargs)
    for name in names:
        assert name in str(error.value)


def test_the_model_config_also_refuses_top_k_over_experts_and_zero_experts():
    with pytest.raises(ValueError, match="top_k=3"):
        cl.ModelConfig(arch="moe", n_experts=2, top_k=3)
    with pytest.raises(ValueError, match="n_experts=0"):
        cl.ModelConfig(arch="moe", n_experts=0, top_k=1)


def test_moe_shape_needs_a_dense_config():
    moe = cl.ModelConfig(arch="moe", d_model=32, n_layer=2, n_head=2)
    with pytest.raises(ValueError, match="dense="):
        moe_shape(moe, n_experts=4)
