"""Notebook 05's panels: the LR slider reads the shipped sweep and prices a mis-set rate; the batch slider reads
steps to a target; the live run measures B_simple. Values are checked against the data they read."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import cot_lab as cl
from cot_lab.core import results
from cot_lab.hparams.panel import BatchPanel, LearningRatePanel, NoiseScalePanel, best_run_per_batch
from cot_lab.scaling.recipe_pilot import load_recipe_pilot


@pytest.fixture(scope="module")
def law():
    return cl.ScalingLaw(**results.load_results("laptop")["holdout"]["fitted_law"])


@pytest.fixture(scope="module")
def lr_rows():
    return pd.DataFrame([r for r in load_recipe_pilot()["runs"] if r["batch_size"] == 4 and r["beta2"] == 0.99])


def test_the_lr_panel_reads_the_sweep_and_prices_a_mis_set_rate(law, lr_rows, tmp_path):
    panel = LearningRatePanel(lr_rows, law, cl.load_corpus("synthetic-v3"), cl.RunStore(tmp_path), flops=1e12,
                              batch_size=4, beta2=0.99)
    curve = lr_rows[lr_rows["d_model"] == 32].sort_values("lr")
    best = curve.loc[curve["final_val_loss"].idxmin()]
    at_best = panel.set(d_model=32, lr=float(best["lr"]))
    assert at_best["loss"] == pytest.approx(best["final_val_loss"], abs=1e-6)
    assert at_best["multiplier"] == pytest.approx(1.0, abs=1e-6)  # nothing wasted at the sweep's best rate
    # at a grid rate the loss is that run's; the multiplier by the law's formula, by hand
    worst = curve.iloc[-1]
    far = panel.set(lr=float(worst["lr"]))
    assert far["loss"] == pytest.approx(worst["final_val_loss"], abs=1e-6)
    tokens = 1e12 / cl.flops_per_token(panel.configs[32])
    by_hand = (1 + (worst["final_val_loss"] - best["final_val_loss"]) * tokens ** law.beta / law.B) ** (1 / law.beta)
    assert far["multiplier"] == pytest.approx(by_hand, rel=1e-9) and far["multiplier"] > 1
    assert "x</b> the budget" in panel.readout_html.value
    with pytest.raises(ValueError, match="frame"):
        LearningRatePanel(pd.DataFrame(), law, cl.load_corpus("synthetic-v3"), flops=1e12, batch_size=4, beta2=0.99)


def mccandlish_run(b, rate=1.0):
    s = 1000.0 * (1 + 50.0 / b) / rate
    return SimpleNamespace(hparams={"batch_size": b}, status="ok", final_val_loss=2.5 + (1 - rate),
                           config=SimpleNamespace(seq_len=128), val_curve=[[k * s / 4, 0, 4.0 - k / 4] for k in range(7)])


def test_the_batch_panel_reads_steps_to_the_target_from_each_batchs_best_run():
    runs = [mccandlish_run(b, rate) for b in (1, 2, 4, 8, 16, 32, 64) for rate in (1.0, 0.5)]
    assert all(r.final_val_loss == 2.5 for r in best_run_per_batch(runs))
    panel = BatchPanel(runs, target_loss=3.0)
    panel.batch_slider.value = 8
    r = panel.readout()
    assert r["steps"] == pytest.approx(1000 * (1 + 50 / 8)) and r["tokens"] == pytest.approx(r["steps"] * 8 * 128)
    assert r["linear_steps"] == pytest.approx(1000 * 51 / 8)  # batch 1's steps, scaled perfectly
    assert r["mccandlish"] == pytest.approx(50.0, rel=1e-9)
    assert "+14%" in panel.readout_html.value  # (1 + 50/8) * 8 / 51 - 1 = 13.7%
    with pytest.raises(ValueError, match="at least 3"):
        BatchPanel(runs[:4])


def test_the_noise_panel_trains_and_draws_b_simple_as_it_goes(tmp_path):
    corpus = cl.load_corpus("synthetic")
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=2, vocab_size=corpus.vocab_size, seq_len=16)
    panel = NoiseScalePanel(cfg, corpus, flops=2e9, batch_size=4, every=20, store=cl.RunStore(tmp_path),
                            eval_sequences=16)
    assert panel.plot.outputs == ()  # nothing shipped given: nothing drawn yet
    run = panel.train()
    assert run.status == "ok"
    frame = panel.hook.frame()
    assert len(frame) == run.steps // 20 and np.isfinite(frame["trace_sigma"]).all()
    assert panel.plot.outputs and "measurements" in panel.status.value
    assert (frame["b_simple_tokens"].dropna() > 0).all()  # a negative B_simple would be a broken estimator
