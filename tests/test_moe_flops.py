"""The kit's parameter and FLOP accounting against the model itself: its tensors summed and its matmuls counted by
torch's FlopCounterMode on the eager experts path, for dense and MoE; an MoE with one expert and top-1 is the dense
model plus its router."""
import pytest
import torch

import cot_lab as cl
from cot_lab.moe import check_accounting, measured_flops_per_token, measured_params, router_overhead

CONFIGS = [
    cl.ModelConfig(d_model=32, n_layer=2, n_head=2, vocab_size=64, seq_len=16),
    cl.ModelConfig(d_model=64, n_layer=2, n_head=4, vocab_size=512, seq_len=64),
    cl.ModelConfig(d_model=32, n_layer=2, n_head=2, vocab_size=64, seq_len=16, arch="moe", n_experts=4, top_k=2, d_ff=48),
    cl.ModelConfig(d_model=64, n_layer=2, n_head=4, vocab_size=512, seq_len=64, arch="moe", n_experts=8, top_k=2),
    cl.ModelConfig(d_model=48, n_layer=1, n_head=3, n_kv_head=1, vocab_size=128, seq_len=32, tie_embeddings=False,
                   arch="moe", n_experts=6, top_k=3, d_ff=40),
]


def softmax_flops(cfg) -> float:
    """The App. F attention-softmax term (3 n_head n_ctx per layer forward, x3 for training): the kit counts it,
    FlopCounterMode (matrix products only) does not."""
    return 3.0 * 3 * cfg.n_head * cfg.seq_len * cfg.n_layer


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.arch}-{c.d_model}x{c.n_layer}")
def test_kit_flops_and_params_agree_with_the_counter_and_the_tensors(cfg):
    check = check_accounting(cfg)
    assert abs(check.flops_error) < 0.01
    # and what is left is exactly the softmax term: every matmul the kit counts is one torch executes
    assert check.kit_flops - softmax_flops(cfg) == pytest.approx(check.measured_flops, rel=1e-9)
    assert check.kit_total_params == check.measured_total_params
    assert check.kit_active_params == check.measured_active_params
    if cfg.arch == "moe":
        assert check.measured_active_params < check.measured_total_params
        assert cl.flops_per_token(cfg, "6n") == 6 * check.measured_active_params


def test_an_moe_with_one_expert_and_top_one_is_the_dense_model_plus_its_router():
    dense = cl.ModelConfig(d_model=64, n_layer=2, n_head=4, vocab_size=512, seq_len=64)
    moe = dense.replace(arch="moe", n_experts=1, top_k=1)
    router_params, router_flops = router_overhead(moe)
    assert (router_params, router_flops) == (2 * 64 * 1, 6 * 2 * 64)  # n_layer x d_model x 1 expert; 6 FLOPs each
    assert router_overhead(dense) == (0, 0.0)
    for method in ("chinchilla", "6n", "kaplan"):
        assert cl.flops_per_token(moe, method) - cl.flops_per_token(dense, method) == router_flops
    assert cl.count_params(moe).total - cl.count_params(dense).total == router_params
    assert cl.active_params(moe) - cl.active_params(dense) == router_params
    d, m = check_accounting(dense), check_accounting(moe)
    assert m.measured_flops - d.measured_flops == router_flops  # torch executes exactly the router's matmuls more
    assert m.measured_total_params - d.measured_total_params == router_params


def test_an_moe_with_one_expert_computes_what_the_dense_model_computes():
    """Same weights, same logits: the single expert is the dense SwiGLU MLP and its routing weight is 1.

    The kit's Llama and Mixtral builds differ in two defaults besides the MLP (rope base 1e4 vs 1e6, RMSNorm eps
    1e-6 vs 1e-5), so the test gives the MoE the dense model's rotary frequencies and eps before comparing."""
    dense_cfg = cl.ModelConfig(d_model=32, n_layer=2, n_head=2, vocab_size=64, seq_len=16)
    dense, moe = cl.build_model(dense_cfg, seed=0), cl.build_model(dense_cfg.replace(arch="moe", n_experts=1, top_k=1))
    with torch.no_grad():
        moe.model.embed_tokens.weight.copy_(dense.model.embed_tokens.weight)
        moe.model.norm.weight.copy_(dense.model.norm.weight)
        for a, b in zip(dense.model.layers, moe.model.layers):
            for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                getattr(b.self_attn, name).weight.copy_(getattr(a.self_attn, name).weight)
            b.input_layernorm.weight.copy_(a.input_layernorm.weight)
            b.post_attention_layernorm.weight.copy_(a.post_attention_layernorm.weight)
            b.mlp.experts.gate_up_proj.copy_(torch.cat([a.mlp.gate_proj.weight, a.mlp.up_proj.weight])[None])
            b.mlp.experts.down_proj.copy_(a.mlp.down_proj.weight[None])
        moe.model.rotary_emb.inv_freq.copy_(dense.model.rotary_emb.inv_freq)
        eps = dense.model.norm.variance_epsilon
        for module in moe.modules():
            if hasattr(module, "variance_epsilon"):
                module.variance_epsilon = eps
        ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(moe(input_ids=ids).logits, dense(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_measuring_leaves_the_model_as_it_was():
    cfg = CONFIGS[2]
    model = cl.build_model(cfg, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    implementations = (model.config._attn_implementation, model.config._experts_implementation)
    flops = measured_flops_per_token(model)
    assert flops == measured_flops_per_token(model, seed=5)  # routing differs, top_k assignments per token do not
    assert (model.config._attn_implementation, model.config._experts_implementation) == implementations
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    total, active = measured_params(model)
    assert (total, active) == (cl.count_params(cfg).total, cl.active_params(cfg))


def test_the_counter_counts_seq_len_tokens_of_context():
    cfg = CONFIGS[3]
    model = cl.build_model(cfg, seed=0)
    short = measured_flops_per_token(model, seq_len=32)
    assert short == pytest.approx(cl.flops_per_token(cfg, seq_len=32) - softmax_flops(cfg.replace(seq_len=32)), rel=1e-9)
    assert short < measured_flops_per_token(model)


def test_bad_arguments_raise_value_errors_naming_them():
    model = cl.build_model(CONFIGS[0], seed=0)
    with pytest.raises(ValueError, match="seq_len=0"):
        measured_flops_per_token(model, seq_len=0)
    with pytest.raises(ValueError, match="batch_size=-1"):
        measured_flops_per_token(model, batch_size=-1)
    with pytest.raises(ValueError, match="cfg="):
        check_accounting("dense")
