"""Training an MoE: the balance-loss coefficient is a keyed knob, the step minimises CE + coef x balance loss while
the curves report the cross-entropy alone, the experts kernel is the fast one where it can run, shapes round trip."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cot_lab as cl
from cot_lab.core.objective import DEFAULT_AUX_LOSS_COEF, moe_objective
from cot_lab.core.plan import plan_run
from cot_lab.moe import RouterStats, moe_shape, router_stats

DENSE = cl.ModelConfig(d_model=16, n_layer=2, n_head=2, seq_len=32)


@pytest.fixture(scope="module")
def moe_cfg(synthetic):
    return moe_shape(DENSE.replace(vocab_size=synthetic.vocab_size), n_experts=4, top_k=2, multiple_of=8)


def test_the_coefficient_is_keyed_for_moe_only_and_defaults_to_switch(synthetic, moe_cfg):
    base = plan_run(moe_cfg, synthetic, tokens=4096, batch_size=4)
    assert base.hparams["aux_loss_coef"] == DEFAULT_AUX_LOSS_COEF == 1e-2
    assert plan_run(moe_cfg, synthetic, tokens=4096, batch_size=4, aux_loss_coef=1e-2).key == base.key
    keys = {plan_run(moe_cfg, synthetic, tokens=4096, batch_size=4, aux_loss_coef=c).key for c in (0, 1e-3, 1e-2)}
    assert len(keys) == 3
    dense = plan_run(DENSE.replace(vocab_size=synthetic.vocab_size), synthetic, tokens=4096, batch_size=4)
    assert "aux_loss_coef" not in dense.hparams  # every dense key is the one it always was


@pytest.mark.parametrize("coef", [-1e-3, float("nan"), "0.01"])
def test_a_bad_coefficient_raises_naming_it(synthetic, moe_cfg, coef):
    with pytest.raises(ValueError, match="aux_loss_coef"):
        plan_run(moe_cfg, synthetic, tokens=4096, batch_size=4, aux_loss_coef=coef)


def test_a_dense_model_refuses_a_coefficient(synthetic):
    with pytest.raises(ValueError, match="aux_loss_coef=0.01.*MoE"):
        plan_run(DENSE.replace(vocab_size=synthetic.vocab_size), synthetic, tokens=4096, aux_loss_coef=0.01)


def test_the_objective_adds_the_weighted_balance_loss_to_the_cross_entropy(synthetic, moe_cfg):
    model = cl.build_model(moe_cfg, seed=0)
    rows = synthetic.val_batch(4, moe_cfg.seq_len)
    # independently: the cross-entropy from the logits, the balance loss from transformers' own output
    out = model(input_ids=rows[:, :-1], output_router_logits=True)
    ce = F.cross_entropy(out.logits.flatten(0, 1), rows[:, 1:].flatten())
    for coef in (0.0, 1e-2, 0.5):
        objective, reported = moe_objective(model, rows, coef)
        assert float(reported.detach()) == pytest.approx(float(ce.detach()), rel=1e-6)
        assert float(objective.detach()) == pytest.approx(float((ce + coef * out.aux_loss).detach()), rel=1e-6)
    assert 1.0 < float(out.aux_loss) < 4.0  # top_k = 2 at perfect balance, 2 x n_experts = 8 at worst


def test_the_recorded_loss_is_the_cross_entropy_and_the_coefficient_changes_the_training(synthetic, moe_cfg):
    rows = next(synthetic.train_batches(4, moe_cfg.seq_len, 0))
    initial = cl.build_model(moe_cfg, seed=0)
    with torch.no_grad():
        first_ce = float(moe_objective(initial, rows, 0.0)[1])
    runs = {c: cl.train(moe_cfg, synthetic, tokens=4 * 32 * 12, batch_size=4, aux_loss_coef=c, progress=False,
                        precision="fp32", eval_sequences=8) for c in (0.0, 0.5)}
    for run in runs.values():
        assert run.status == "ok" and run.hparams["group_size"] == 1
        assert run.train_curve[0][2] == pytest.approx(first_ce, rel=1e-5)  # step 1: CE, without the 0.5 x ~2 term
    weights = [dict(r.load_model().named_parameters()) for r in runs.values()]
    gate = next(n for n in weights[0] if "gate" in n and "experts" not in n)
    assert not torch.allclose(weights[0][gate], weights[1][gate])  # the router learned differently


def test_a_strong_balance_loss_balances_the_router(synthetic, moe_cfg):
    """With coefficient 0 nothing pushes the load to even; with 0.5 the Switch loss falls towards its floor
    (1 per layer in the kit's normalisation): a short run already separates the two."""
    stats = {}
    for coef in (0.0, 0.5):
        run = cl.train(moe_cfg, synthetic, tokens=4 * 32 * 120, batch_size=4, aux_loss_coef=coef, progress=False,
                       precision="fp32", eval_sequences=8, lr=1e-2)
        stats[coef] = router_stats(run.load_model(), synthetic, sequences=16)
    assert stats[0.5].balance_loss.mean() < stats[0.0].balance_loss.mean()
    assert stats[0.5].balance_loss.mean() < 1.05


def test_grouped_mm_where_the_expert_width_allows_it_else_eager():
    assert cl.experts_implementation(moe_shape(DENSE, n_experts=8, top_k=2, multiple_of=8)) == "grouped_mm"
    odd = moe_shape(DENSE, n_experts=8, top_k=2)  # the exact match: width 23
    assert odd.d_ff % 8 and cl.experts_implementation(odd) == "eager"
    assert cl.build_model(odd).config._experts_implementation == "eager"


def test_the_two_kernels_compute_the_same_loss(synthetic):
    cfg = moe_shape(DENSE.replace(vocab_size=synthetic.vocab_size), n_experts=4, top_k=2, multiple_of=8)
    model = cl.build_model(cfg, seed=0)
    rows = synthetic.val_batch(4, cfg.seq_len)
    losses = {}
    for name in ("grouped_mm", "eager"):
        model.set_experts_implementation(name)
        losses[name] = float(moe_objective(model, rows, 1e-2)[0])
    assert losses["grouped_mm"] == pytest.approx(losses["eager"], rel=1e-6)


def test_multiple_of_eight_is_the_nearest_multiple_and_stays_within_two_percent():
    from cot_lab.moe import expert_width, flops_mismatch

    for dense in cl.size_ladder()[:10]:
        moe = moe_shape(dense, n_experts=8, top_k=2, multiple_of=8)
        ideal = (3 * dense.d_ff - 8) / 6
        assert moe.d_ff % 8 == 0 and abs(moe.d_ff - ideal) <= 4
        assert moe.d_ff == expert_width(dense.d_ff, dense.d_model, 8, 2, 8)
        assert abs(flops_mismatch(moe, dense)) < 0.021
    with pytest.raises(ValueError, match="multiple_of=0"):
        moe_shape(DENSE, n_experts=8, top_k=2, multiple_of=0)


def test_router_stats_survive_a_json_round_trip(synthetic, moe_cfg):
    import json

    stats = router_stats(cl.build_model(moe_cfg, seed=0), synthetic, sequences=4)
    back = RouterStats.from_record(json.loads(json.dumps(stats.to_record())))
    assert np.array_equal(back.counts, stats.counts) and back.dead_experts == stats.dead_experts
    assert np.allclose(back.balance_loss, stats.balance_loss) and back.tokens == stats.tokens
