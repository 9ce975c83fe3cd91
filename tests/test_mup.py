"""muP (core/mup.py): the init and rates it sets, that it is the standard parametrisation at its base width, and the
coordinate check (Yang et al. 2022, arXiv 2203.03466, Sec. 6): activations move the same at every width under muP,
more with width under the standard parametrisation."""
import math

import pytest
import torch

import cot_lab as cl
from cot_lab.core import mup, recipe
from cot_lab.core.plan import plan_run
from cot_lab.hparams.width import coordinate_check, growth_exponents, width_config


def _cfg(width, corpus, n_layer=2, seq_len=32):
    return cl.ModelConfig(d_model=width, n_layer=n_layer, n_head=width // 8, vocab_size=corpus.vocab_size,
                          seq_len=seq_len)


def test_init_scales_hidden_matrices_by_root_width_and_the_output_gain_by_width(synthetic):
    cfg = _cfg(128, synthetic)
    torch.manual_seed(0)
    sp = cl.build_model(cfg)
    torch.manual_seed(0)
    mu = cl.build_model(cfg)
    mup.apply_mup_init(mu, base_width=32)  # m = 4
    hidden = mup.hidden_matrices(mu)
    assert len(hidden) == 7 * cfg.n_layer
    for a, b in zip(mup.hidden_matrices(sp), hidden):
        torch.testing.assert_close(b, a / 2.0)  # 1/sqrt(4)
    assert torch.all(mu.model.norm.weight == 0.25)
    torch.testing.assert_close(mu.model.embed_tokens.weight, sp.model.embed_tokens.weight)  # input weight: unchanged
    assert torch.all(mu.model.layers[0].input_layernorm.weight == 1.0)


def test_optimizer_gives_hidden_matrices_and_output_gain_rate_over_width(synthetic):
    model = cl.build_model(_cfg(128, synthetic))
    opt = recipe.make_optimizer(model, 1e-2, 0.1, model.device, mup_base_width=32)
    by_param = {id(p): g for g in opt.param_groups for p in g["params"]}
    for p in mup.hidden_matrices(model):
        assert by_param[id(p)]["lr_scale"] == 0.25 and by_param[id(p)]["lr"] == pytest.approx(2.5e-3)
        assert by_param[id(p)]["weight_decay"] == 0.1
    gain = by_param[id(model.model.norm.weight)]
    assert gain["lr_scale"] == 0.25 and gain["weight_decay"] == 0.0
    embedding = by_param[id(model.model.embed_tokens.weight)]
    assert embedding["lr_scale"] == 1.0 and embedding["weight_decay"] == 0.0
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    sp = recipe.make_optimizer(model, 1e-2, 0.1, model.device)
    assert [g["lr_scale"] for g in sp.param_groups] == [1.0, 1.0]


def test_mup_at_its_base_width_is_the_standard_parametrisation(synthetic):
    cfg = _cfg(32, synthetic)
    kw = dict(tokens=40 * 4 * 32, batch_size=4, lr=1e-2, precision="fp32", compile=False, eval_sequences=8,
              progress=False)
    sp = cl.train(cfg, synthetic, **kw)
    mu = cl.train(cfg, synthetic, mup_base_width=32, **kw)
    assert mu.final_val_loss == pytest.approx(sp.final_val_loss, abs=1e-6)
    assert mu.run_id != sp.run_id and mu.hparams["mup_base_width"] == 32 and "mup_base_width" not in sp.hparams
    wider = cl.train(_cfg(64, synthetic), synthetic, mup_base_width=32, **kw)
    narrow_sp = cl.train(_cfg(64, synthetic), synthetic, **kw)
    assert abs(wider.final_val_loss - narrow_sp.final_val_loss) > 1e-3  # at m = 2 it is a different model


def test_standard_runs_keep_their_keys(synthetic):
    cfg = _cfg(32, synthetic)
    a = plan_run(cfg, synthetic, flops=1e9, batch_size=2)
    b = plan_run(cfg, synthetic, flops=1e9, batch_size=2, mup_base_width=None)
    assert a.key == b.key and "mup_base_width" not in a.hparams


def test_bad_mup_settings_are_value_errors(synthetic):
    with pytest.raises(ValueError, match="mup_base_width"):
        plan_run(_cfg(32, synthetic), synthetic, flops=1e9, batch_size=2, mup_base_width=0)
    moe = _cfg(32, synthetic).replace(arch="moe", n_experts=4, top_k=2)
    with pytest.raises(ValueError, match="mup_base_width is for dense"):
        plan_run(moe, synthetic, flops=1e9, batch_size=2, mup_base_width=32)
    with pytest.raises(ValueError, match="multiple of the head size"):
        width_config(36, _cfg(32, synthetic))


@pytest.fixture(scope="module")
def checks(synthetic):
    template = _cfg(32, synthetic, n_layer=2, seq_len=64)
    widths = (32, 64, 128, 256)
    return {name: coordinate_check(template, synthetic, widths=widths, steps=4, lr=1e-2, mup_base_width=base)
            for name, base in (("sp", None), ("mup", 32))}


def test_coordinate_check_records_every_layer_at_every_step(checks):
    check = checks["mup"]
    assert sorted(check.width.unique()) == [32, 64, 128, 256]
    assert set(check.layer) == {"embedding", "block 1", "block 2", "logits"}
    assert sorted(check.step.unique()) == [1, 2, 3, 4]
    assert (check.change > 0).all() and check.change.map(math.isfinite).all()
    # at the base width the two parametrisations are the same model trained the same way
    base = lambda c: c[c.width == 32].sort_values(["step", "layer"]).change.to_numpy()  # noqa: E731
    assert base(checks["sp"]) == pytest.approx(base(checks["mup"]), rel=1e-5)


def test_mup_activations_move_the_same_at_every_width(checks):
    # muP's promise: per-coordinate movement independent of width (exponent 0); allow +-0.25 over 8x in width
    exponents = growth_exponents(checks["mup"])
    assert all(abs(e) < 0.25 for e in exponents.values()), exponents


def test_standard_parametrisation_moves_hidden_layers_more_with_width(checks):
    # Adam's per-coordinate steps add up along the fan-in: a hidden layer's movement grows ~ width (exponent >= 1)
    sp, mup = growth_exponents(checks["sp"]), growth_exponents(checks["mup"])
    for block in ("block 1", "block 2"):
        assert sp[block] > 0.5 and sp[block] > mup[block] + 0.5, (sp, mup)


@pytest.mark.xfail(strict=True, reason="measured: the standard parametrisation's logits move as width^0.44 after 4 "
                   "steps over d_model 32-256 (theory: ~width^1 in the limit); the final RMSNorm and the tied "
                   "embedding's small early updates keep it below 0.5 at these widths and steps")
def test_standard_parametrisation_moves_the_logits_more_with_width(checks):
    # Yang et al.: in the standard parametrisation the output logits blow up with width under Adam (exponent ~1)
    exponents = growth_exponents(checks["sp"])
    assert exponents["logits"] > 0.5, exponents
