"""Notebook 05's figures pass the readability check and draw the numbers they claim."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cot_lab.hparams import plots
from cot_lab.hparams.critical import critical_batch
from cot_lab.hparams.deepseek import deepseek_batch_tokens
from cot_lab.scaling.recipe_pilot import best_lr, load_recipe_pilot
from cot_lab.ui.figure_check import assert_readable


@pytest.fixture(scope="module")
def lr_rows():
    pilot = load_recipe_pilot()
    return pd.DataFrame([r for r in pilot["runs"] if r["batch_size"] == 4 and r["beta2"] == 0.99])


def mccandlish_run(b, s_min=1000.0, b_noise=50.0):
    s = s_min * (1 + b_noise / b)  # steps to loss 3.0: the curve falls a quarter nat per quarter of them
    return SimpleNamespace(hparams={"batch_size": b}, config=SimpleNamespace(seq_len=128),
                           val_curve=[[k * s / 4, 0, 4.0 - k / 4] for k in range(7)])


def test_lr_curves_star_each_widths_best_rate(lr_rows):
    fig = plots.lr_curves(lr_rows)
    best = {d: best_lr(g["lr"], g["final_val_loss"]) for d, g in lr_rows.groupby("d_model")}
    assert_readable(fig, must_show_y=[loss for _, loss, _ in best.values()])
    stars = [line for line in fig.axes[0].lines if line.get_marker() == "*"]
    assert sorted(float(s.get_xdata()[0]) for s in stars) == pytest.approx(sorted(lr for lr, _, _ in best.values()))
    measured = SimpleNamespace(hparams={"lr": 0.01}, final_val_loss=3.26, config=SimpleNamespace(d_model=32))
    marked = plots.lr_curves(lr_rows[lr_rows["d_model"] == 32], chosen_lr=0.01, measured=[measured])
    assert_readable(marked, must_show_y=[3.26])
    assert any(t.get_text() == "your rate: 0.01" for t in marked.axes[0].get_legend().get_texts())
    with pytest.raises(ValueError, match="frame"):
        plots.lr_curves(pd.DataFrame())


def test_steps_vs_tokens_marks_both_critical_batches():
    critical = critical_batch([mccandlish_run(b) for b in (1, 2, 4, 8, 16, 32, 64, 128)], 3.0)
    fig = plots.steps_vs_tokens(critical)
    assert_readable(fig)
    ax = fig.axes[0]
    diamond, = [line for line in ax.lines if line.get_marker() == "D"]
    # McCandlish's B_crit sits where the steps are twice S_min, and so the tokens twice E_min
    assert float(diamond.get_ydata()[0]) == pytest.approx(2 * 1000.0, rel=1e-9)
    assert float(diamond.get_xdata()[0]) == pytest.approx(2 * 1000.0 * 50.0 * 128, rel=1e-9)
    assert any("Zhang" in t.get_text() for t in ax.get_legend().get_texts())
    ringed = plots.steps_vs_tokens(critical, chosen=8)
    assert_readable(ringed)
    ring, = [line for line in ringed.axes[0].lines if line.get_label() == "your batch: 8"]
    assert float(ring.get_ydata()[0]) == pytest.approx(1000.0 * (1 + 50.0 / 8))


def test_noise_scale_trajectory_shows_the_loss_and_b_simple():
    history = [dict(tokens=t, b_simple_tokens=300 + t / 1e4) for t in np.linspace(1e5, 1.6e6, 15)]
    run = SimpleNamespace(val_curve=[[i, t, 4 - t / 1e6] for i, t in enumerate(np.linspace(1e5, 1.6e6, 20))])
    fig = plots.noise_scale_trajectory(history, run)
    assert_readable(fig, must_show_y=[history[-1]["b_simple_tokens"]])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="history"):
        plots.noise_scale_trajectory([])


def test_three_answers_draws_deepseek_dashed_below_its_fitted_budgets():
    fig = plots.three_answers(1e12, b_simple_tokens=600, mccandlish_tokens=6400, zhang_tokens=1500,
                              kit_batch_tokens=512)
    assert_readable(fig, must_show_y=[600, 6400, 1500, 512, deepseek_batch_tokens(1e12)])
    ax = fig.axes[0]
    dashed, solid = [line for line in ax.lines if line.get_linestyle() in ("--", "-") and line.get_marker() in ("None", "")]
    assert dashed.get_linestyle() == "--" and float(dashed.get_xdata()[-1]) == pytest.approx(1e17)
    assert float(solid.get_xdata()[0]) == pytest.approx(1e17)
    assert not math.isnan(float(dashed.get_ydata()[0]))
