"""The training recipe: what weight decay reaches, beta2 in the run key, and the constants fitted to the shipped pilot."""
import math

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.core import recipe
from cot_lab.core.plan import plan_run
from cot_lab.scaling import recipe_pilot as rp


def test_weight_decay_reaches_attention_and_mlp_matrices_only():
    cfg = cl.ModelConfig(d_model=32, n_layer=2, n_head=4, vocab_size=512, seq_len=64)
    model = cl.build_model(cfg)
    decay, no_decay = recipe.decayed_parameters(model)
    embedding = model.get_input_embeddings().weight
    assert embedding is model.get_output_embeddings().weight  # tied: one tensor
    assert any(p is embedding for p in no_decay) and not any(p is embedding for p in decay)
    assert all(p.dim() == 2 for p in decay) and all(p.dim() == 1 for p in no_decay if p is not embedding)
    counts = cl.count_params(cfg)
    assert sum(p.numel() for p in decay) == counts.non_embedding - (2 * cfg.n_layer + 1) * cfg.d_model
    assert sum(p.numel() for p in decay) + sum(p.numel() for p in no_decay) == counts.total
    opt = recipe.make_optimizer(model, 1e-3, 0.1, model.device, beta2=0.99)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert opt.param_groups[0]["betas"] == (0.9, 0.99)


def test_beta2_is_part_of_the_run(synthetic):
    cfg = cl.ModelConfig(d_model=16, n_layer=2, n_head=2, vocab_size=synthetic.vocab_size, seq_len=32)
    base = plan_run(cfg, synthetic, flops=1e9, batch_size=2)
    assert base.hparams["beta2"] == recipe.BETA2 and base.hparams["decay_embeddings"] is False
    other = plan_run(cfg, synthetic, flops=1e9, batch_size=2, beta2=0.9)
    assert other.key != base.key
    with pytest.raises(ValueError, match="beta2"):
        plan_run(cfg, synthetic, flops=1e9, beta2=1.0)


def test_width_rule_is_active_across_the_ladder():
    rates = [cl.default_lr(c) for c in cl.size_ladder()[:8]]
    assert len(set(rates)) == len(rates)  # no clip makes it constant where the sweep's minima sit
    widths = [c.d_model for c in cl.size_ladder()[:8]]
    slope = np.polyfit(np.log(widths), np.log(rates), 1)[0]
    assert slope == pytest.approx(-recipe.LR_WIDTH_EXPONENT, abs=1e-9)


# ---------------------------------------------------------------- the shipped recipe pilot

@pytest.fixture(scope="module")
def pilot():
    return rp.load_recipe_pilot()


def test_recipe_pilot_has_every_run_it_promises(pilot):
    runs = pilot["runs"]
    lr_part = [r for r in runs if r["batch_size"] == rp.SWEEP_BATCH]
    assert len(lr_part) == len(rp.WIDTHS) * len(rp.LRS) * len(rp.BETA2S)
    batch_part = [r for r in runs if r["batch_size"] != rp.SWEEP_BATCH]
    assert {r["batch_size"] for r in batch_part} == set(rp.BATCHES) - {rp.SWEEP_BATCH}
    for batch in set(rp.BATCHES) - {rp.SWEEP_BATCH}:
        assert len([r for r in batch_part if r["batch_size"] == batch]) >= 4  # its own rates, re-tuned
    assert all(r["beta2"] == recipe.BETA2 for r in batch_part)
    assert all(np.isfinite(r["final_val_loss"]) and r["final_val_loss"] > 2.98 for r in runs)


def test_every_learning_rate_curve_is_u_shaped(pilot):
    curves = rp.curves_frame(pilot["runs"])
    assert len(curves[curves.batch_size == rp.SWEEP_BATCH]) == len(rp.WIDTHS) * len(rp.BETA2S)
    assert len(curves) == len(rp.WIDTHS) * len(rp.BETA2S) + len(rp.BATCHES) - 1
    assert curves.interior.all(), curves[["d_model", "batch_size", "beta2", "best_lr", "interior"]]


def test_recipe_constants_are_the_fit_of_the_shipped_pilot(pilot):
    fit = rp.fit_recipe(pilot)
    assert recipe.BETA2 == fit["beta2"]
    assert recipe.LR_AT_D32 == pytest.approx(fit["lr_at_d32"], rel=1e-3)
    assert recipe.LR_WIDTH_EXPONENT == pytest.approx(fit["lr_width_exponent"], abs=1e-3)
    # the batch rule gives the pilot's best batch at the pilot's budget
    assert cl.batch_size_for(rp.BUDGET, rp.SEQ_LEN) == fit["best_batch"]


def test_best_lr_is_the_vertex_of_a_parabola_in_log_lr():
    lrs = [1e-3, 2e-3, 4e-3, 8e-3]
    true = 3e-3
    losses = [3.0 + 0.05 * math.log(lr / true) ** 2 for lr in lrs]
    lr, loss, interior = rp.best_lr(lrs, losses)
    assert lr == pytest.approx(true, rel=1e-9) and loss == pytest.approx(3.0) and interior
    assert rp.best_lr(lrs, [3.0, 3.1, 3.2, 3.3]) == (1e-3, 3.0, False)  # at the grid's edge: no vertex
