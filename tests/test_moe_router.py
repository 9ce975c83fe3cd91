"""Router statistics with real values: the Switch balance loss against the definition written out here and against
transformers' aux_loss, counts that add up, a hand-built router whose routing is known, and a trainer hook."""
import math

import numpy as np
import pytest
import torch

import cot_lab as cl
from cot_lab.moe import RouterCallback, router_stats, router_stats_of_rows, routing_stats


def moe_config(**changes):
    fields = dict(arch="moe", d_model=32, n_layer=2, n_head=2, vocab_size=512, seq_len=32, n_experts=4, top_k=2, d_ff=32)
    return cl.ModelConfig(**{**fields, **changes})


@pytest.fixture(scope="module")
def random_moe():
    return cl.build_model(moe_config(), seed=0)


def definition(logits: np.ndarray, top_k: int) -> dict:
    """Fedus et al. 2021 Eq. 4-6 and Zoph et al. 2022 Eq. 5 for one layer's logits [T, N], written out in numpy."""
    tokens, n = logits.shape
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    chosen = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    counts = np.bincount(chosen.ravel(), minlength=n)
    f = counts / (tokens * top_k)
    p = probs.mean(axis=0)
    lse = np.log(np.exp(shifted).sum(axis=1)) + logits.max(axis=1)
    return dict(counts=counts, f=f, p=p, balance=n * np.sum(f * p), z=np.mean(lse ** 2))


def test_counts_sum_to_tokens_times_top_k(random_moe, synthetic):
    stats = router_stats(random_moe, synthetic, sequences=4)
    assert stats.tokens == 4 * 32
    assert stats.counts.shape == (2, 4)
    assert (stats.counts.sum(axis=1) == 4 * 32 * 2).all()
    assert np.allclose(stats.load.sum(axis=1), 1.0)
    assert np.allclose(stats.mean_prob.sum(axis=1), 1.0)


def test_balance_and_z_loss_match_the_definition_and_transformers(random_moe, synthetic):
    rows = synthetic.val_batch(6, 32)
    stats = router_stats_of_rows(random_moe, rows)
    with torch.no_grad():
        out = random_moe(input_ids=rows[:, :-1], output_router_logits=True)
    per_layer = [definition(x.double().numpy(), 2) for x in out.router_logits]
    for layer, d in enumerate(per_layer):
        assert (stats.counts[layer] == d["counts"]).all()
        assert stats.balance_loss[layer] == pytest.approx(d["balance"], rel=1e-6)
        assert stats.z_loss[layer] == pytest.approx(d["z"], rel=1e-6)
    # transformers pools counts (per token, not per assignment) and probabilities over layers, then multiplies
    n, k = 4, 2
    pooled_f = np.mean([d["counts"] / stats.tokens for d in per_layer], axis=0)  # sums to top_k
    pooled_p = np.mean([d["p"] for d in per_layer], axis=0)
    hf_by_hand = n * np.sum(pooled_f * pooled_p)
    assert float(out.aux_loss) == pytest.approx(hf_by_hand, rel=1e-6)
    assert stats.hf_aux_loss == pytest.approx(float(out.aux_loss), rel=1e-6)
    assert stats.transformers_aux_loss() == pytest.approx(float(out.aux_loss), rel=1e-6)
    # which is not the mean of the per-layer Switch losses: it is top_k times the pooled one
    pooled_kit = n * np.sum(stats.load.mean(axis=0) * stats.mean_prob.mean(axis=0))
    assert stats.transformers_aux_loss() == pytest.approx(k * pooled_kit, rel=1e-9)
    # a fresh model routes almost uniformly: each per-layer loss is near 1, its minimum at uniform routing
    assert np.all(np.abs(stats.balance_loss - 1) < 0.05)


def hand_built(n_experts=6, top_k=2, n_layer=2, scale=0.5):
    """An MoE whose every layer sees the same hidden state +-10 e_0 (even / odd token ids): attention and expert
    outputs are zeroed, so the residual stream is the embedding. RMSNorm makes it +-4 e_0 (d_model 16), and
    the router's logits are +-[2, 1, -1, -2, 0, 0] for scale 0.5: even tokens go to experts {0, 1}, odd ones to
    {3, 2}, experts 4 and 5 get nothing."""
    cfg = moe_config(d_model=16, n_head=2, n_layer=n_layer, n_experts=n_experts, top_k=top_k)
    model = cl.build_model(cfg, seed=0)
    with torch.no_grad():
        emb = torch.zeros(cfg.vocab_size, cfg.d_model)
        emb[:, 0] = torch.where(torch.arange(cfg.vocab_size) % 2 == 0, 10.0, -10.0)
        model.model.embed_tokens.weight.copy_(emb)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.experts.down_proj.zero_()
            gate = torch.zeros(n_experts, cfg.d_model)
            gate[:4, 0] = scale * torch.tensor([1.0, 0.5, -0.5, -1.0])
            layer.mlp.gate.weight.copy_(gate)
    return model


def test_a_hand_built_router_gives_the_known_counts_entropy_and_dead_experts(synthetic):
    model = hand_built()
    rows = synthetic.val_batch(8, 32)
    tokens = 8 * 32
    even = int((rows[:, :-1] % 2 == 0).sum())
    odd = tokens - even
    assert 0 < odd < tokens  # both kinds of token occur, so two groups of experts are busy
    stats = router_stats_of_rows(model, rows, capacity_factor=1.0)
    for layer in range(2):
        assert stats.counts[layer].tolist() == [even, even, odd, odd, 0, 0]
        assert stats.dead_experts[layer] == (4, 5)
    # load entropy of f = [e, e, o, o, 0, 0] / 2T, in nats
    f = np.array([even, even, odd, odd]) / (2 * tokens)
    assert stats.load_entropy == pytest.approx([-np.sum(f * np.log(f))] * 2, rel=1e-9)
    # every token's router distribution is a permutation of softmax([2, 1, -1, -2, 0, 0])
    logits = np.array([2.0, 1.0, -1.0, -2.0, 0.0, 0.0])
    p = np.exp(logits) / np.exp(logits).sum()
    assert stats.router_entropy == pytest.approx([-np.sum(p * np.log(p))] * 2, rel=1e-5)
    assert stats.z_loss == pytest.approx([math.log(np.exp(logits).sum()) ** 2] * 2, rel=1e-5)
    p_odd = p[[3, 2, 1, 0, 4, 5]]
    mean_p = (even * p + odd * p_odd) / tokens
    f6 = np.array([even, even, odd, odd, 0, 0]) / (2 * tokens)
    assert stats.balance_loss == pytest.approx([6 * np.sum(f6 * mean_p)] * 2, rel=1e-5)
    # capacity floor(1.0 * T * 2 / 6) assignments per expert; the four busy experts overflow it
    cap = math.floor(tokens * 2 / 6)
    over = (2 * max(0, even - cap) + 2 * max(0, odd - cap)) / (2 * tokens)
    assert over > 0 and stats.overflow == pytest.approx([over] * 2, rel=1e-12)
    assert router_stats_of_rows(model, rows, capacity_factor=2.0).overflow.tolist() == [0.0, 0.0]  # 2x T/3 > T/2


def test_top_one_routing_with_one_busy_expert():
    """Logits that send every token to expert 2: load entropy 0, every other expert dead, balance loss N * P_2."""
    logits = torch.zeros(100, 4)
    logits[:, 2] = 3.0
    stats = routing_stats([logits], top_k=1, capacity_factor=1.0)
    assert stats.counts.tolist() == [[0, 0, 100, 0]]
    assert stats.dead_experts == ((0, 1, 3),)
    assert stats.load_entropy.tolist() == [0.0]
    p2 = math.exp(3) / (math.exp(3) + 3)
    assert stats.balance_loss[0] == pytest.approx(4 * p2)
    assert stats.overflow[0] == pytest.approx(0.75)  # capacity 25 of 100 tokens
    uniform = routing_stats([torch.zeros(100, 4)], top_k=4)
    assert uniform.balance_loss[0] == pytest.approx(1.0) and uniform.load_entropy[0] == pytest.approx(math.log(4))


def test_the_router_callback_records_routing_over_a_short_training(synthetic):
    cfg = moe_config(d_model=16, n_head=2, n_layer=1, seq_len=16)
    callback = RouterCallback(synthetic, every=3, sequences=4)
    seen = []
    callback.on_measure = lambda step, tokens, stats: seen.append(step)
    run = cl.train(cfg, synthetic, tokens=8 * 16 * 7, batch_size=8, callbacks=[callback], progress=False,
                   eval_sequences=8, compile=False)
    assert run.status == "ok" and run.steps == 7
    steps = [record[0] for record in callback.history]
    assert steps == seen == [0, 3, 6, 7]  # before the first step, every 3, and after the last
    frame = callback.frame()
    assert list(frame.step) == steps and list(frame.tokens) == [0, 3 * 128, 6 * 128, 7 * 128]
    assert {"balance_loss", "z_loss", "load_entropy", "router_entropy", "n_dead", "overflow"} <= set(frame.columns)
    per_expert = callback.frame(per_expert=True)
    assert len(per_expert) == 4 * 4 and (per_expert.groupby("step")["count"].sum() == 4 * 16 * 2).all()
    # the last record is the trained model's routing on the same rows
    final = router_stats_of_rows(run.load_model(), synthetic.val_batch(4, 16))
    assert (callback.history[-1][2].counts == final.counts).all()
    assert callback.history[-1][2].balance_loss == pytest.approx(final.balance_loss, rel=1e-5)


@pytest.mark.parametrize("factor", [0, -1.0, float("nan"), "1"])
def test_a_capacity_factor_that_is_not_positive_raises(random_moe, synthetic, factor):
    with pytest.raises(ValueError, match="capacity_factor"):
        router_stats(random_moe, synthetic, sequences=2, capacity_factor=factor)
    with pytest.raises(ValueError, match="capacity_factor"):
        RouterCallback(synthetic, capacity_factor=factor)
    with pytest.raises(ValueError, match="capacity_factor"):
        routing_stats([torch.zeros(4, 2)], top_k=1, capacity_factor=factor)


def test_other_bad_inputs_raise_value_errors_naming_them(synthetic):
    dense = cl.build_model(cl.ModelConfig(d_model=16, n_layer=1, n_head=2, vocab_size=512, seq_len=16), seed=0)
    with pytest.raises(ValueError, match="model=LlamaForCausalLM"):
        router_stats(dense, synthetic)
    with pytest.raises(ValueError, match="top_k=3"):
        routing_stats([torch.zeros(4, 2)], top_k=3)
    with pytest.raises(ValueError, match="every=0"):
        RouterCallback(synthetic, every=0)
    with pytest.raises(ValueError, match="sequences=0"):
        router_stats(cl.build_model(moe_config(), seed=0), synthetic, sequences=0)
