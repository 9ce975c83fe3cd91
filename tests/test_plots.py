"""Every public plot function of the kit, drawn from the shipped laptop sweep (or frames shaped like what the
notebooks pass), passes the readability check; and the fixes the check asked for hold."""
import inspect
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from cot_lab.budgets import plots as budget_plots
from cot_lab.compress import plots as compress_plots
from cot_lab.hparams import plots as hparam_plots
from cot_lab.inference import plots as inference_plots
from cot_lab.moe import plots as moe_plots
from cot_lab.core import results
from cot_lab.scaling import plots as scaling_plots
from cot_lab.scaling.sweep_fit import fit_sweep
from cot_lab.ui import figures
from cot_lab.ui.figure_check import assert_readable

PLOT_MODULES = (figures, scaling_plots, compress_plots, budget_plots, inference_plots, hparam_plots, moe_plots)
CHECKED = {"loss_curve", "isoflop_curves", "frontier", "exponents", "size_at_budget", "prediction_check",
           "quality_vs_sparsity", "size_quality_frontier", "latency_ratios", "accounting_figure", "skill_bars",
           "skills_by_budget", "recipe_pilot",
           "lifetime_cost_vs_requests", "optimal_size_vs_requests", "serving_speed",  # test_inference_plots.py
           "lr_curves", "steps_vs_tokens", "noise_scale_trajectory", "three_answers",  # test_hparam_plots.py
           "width_transfer", "coordinate_check_plot",  # test_width_transfer.py
           "isoflop_comparison", "memory_comparison", "wall_clock_comparison", "router_load",
           "serving_tradeoff"}  # test_moe_shipped.py


@pytest.fixture(scope="module")
def shipped():
    return results.load_results("laptop")


@pytest.fixture(scope="module")
def fit(shipped):
    return fit_sweep(shipped["runs"], bootstrap=20, seed=0)  # 20 resamples: intervals to draw, in seconds


def test_every_public_plot_function_is_checked_here():
    plot_functions = {name for module in PLOT_MODULES for name, f in inspect.getmembers(module, inspect.isfunction)
                      if f.__module__ == module.__name__ and not name.startswith("_")
                      and inspect.signature(f).return_annotation in (Figure, "Figure")}
    assert plot_functions == CHECKED


# ------------------------------------------------------------------ loss curves (notebooks 00 and 03)


def test_loss_curve_shows_the_start_near_ln_vocab_and_zooms_on_the_end(shipped):
    run = shipped["runs"][0]
    ln_vocab = math.log(run.config.vocab_size)
    assert run.train_curve[0][2] == pytest.approx(ln_vocab, abs=0.05)  # the prose: "starts near ln V"
    fig = figures.loss_curve(run, floor=run.entropy, title="Training and validation loss")
    assert_readable(fig, must_show_y=[ln_vocab, run.entropy, run.final_val_loss])
    whole, zoom = fig.axes
    assert whole.get_ylim()[0] < run.entropy and whole.get_ylim()[1] > ln_vocab
    assert zoom.get_title().startswith("zoom") and zoom.get_ylim()[1] < 4.5
    assert zoom.get_ylim()[0] < run.final_val_loss < zoom.get_ylim()[1]


def test_loss_curve_names_the_raw_and_the_smoothed_training_lines(shipped):
    runs = shipped["runs"]
    fig = figures.loss_curve({"1x budget": runs[0], "2x budget": runs[5]}, floor=runs[0].entropy)
    assert_readable(fig, must_show_y=[math.log(runs[0].config.vocab_size)])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "train, as logged (faint)"
    # 200 points logged (9114 steps) / 199 = 45.8 steps apart; a 200-point curve is averaged over 21 points
    assert "1x budget (train, centred average of ~962 steps)" in labels
    assert "2x budget (validation)" in labels and f"entropy floor {runs[0].entropy:.3f}" in labels


def test_smoothed_training_line_does_not_lag_above_the_raw_one(shipped):
    run = shipped["runs"][0]
    ax = figures.loss_curve(run).axes[0]
    raw, smoothed = (np.asarray(line.get_ydata()) for line in ax.lines[:2])
    # A trailing average of a falling loss sits above it; this one is centred and keeps the start.
    assert abs(np.mean(smoothed - raw)) < 0.02  # the moving average drawn before sat 0.13 above
    assert smoothed[0] == raw[0] == pytest.approx(math.log(run.config.vocab_size), abs=0.01)


def test_recovery_plot_keeps_its_one_validation_point_clear_of_the_legend(shipped):
    run = shipped["runs"][3]
    tail = run.train_curve[len(run.train_curve) // 2:]  # a fine-tuning curve that starts well below ln V
    val = [[tail[-1][0], tail[-1][1], run.final_val_loss]]
    fig = figures.loss_curve({"recovery fine-tuning": (tail, val)}, floor=run.entropy,
                             title="Recovery: training loss of the pruned model")
    assert len(fig.axes) == 1  # nothing to zoom on
    assert_readable(fig, must_show_y=[run.final_val_loss])


# ------------------------------------------------------------------ notebook 02


def test_isoflop_curves_explain_parabolas_and_stars(shipped, fit):
    runs = shipped["runs"]
    fig = scaling_plots.isoflop_curves(runs, fit, floor=runs[0].entropy, extra_runs=runs[:2])
    assert_readable(fig, must_show_y=[runs[0].entropy])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:3] == ["C = 5e+11 FLOPs", "C = 1e+12 FLOPs", "C = 2e+12 FLOPs"]
    assert "its minimum: that budget's best size" in labels and "extra runs (open circles)" in labels


def test_frontier_names_every_line(fit):
    fig = scaling_plots.frontier(fit, extend_to=4 * max(fit.budgets))
    assert_readable(fig, must_show_x=[4 * max(fit.budgets)])
    assert "Approach 2: power law through the minima" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_exponents_band_is_labelled_with_what_it_is(fit):
    fig = scaling_plots.exponents(fit)
    assert_readable(fig, must_show_x=[0.5, 0.73])
    band = fig.axes[0].patches[0]
    low, high = scaling_plots.CHINCHILLA_LIKE
    assert (low, high) == (0.35, 0.65)
    assert band.get_x() == low and band.get_x() + band.get_width() == pytest.approx(high)
    assert band.get_label().startswith("0.35–0.65: Chinchilla-like")
    assert len(fig.axes[0].get_yticklabels()) == len(fit.exponents())


def test_size_at_budget_and_prediction_check(shipped, fit):
    runs, law = shipped["runs"], fit.approach3
    flops = max(fit.budgets)
    sizes = sorted({r.n_params for r in runs})
    at_budget = [r for r in runs if r.budget["value"] == flops]
    assert_readable(scaling_plots.size_at_budget(law, flops, sizes, [flops / (6 * n) for n in sizes],
                                                 chosen=sizes[2], measured=at_budget, floor=runs[0].entropy))
    holdout = shipped["holdout"]
    fig = scaling_plots.prediction_check(law, runs, holdout["runs"], holdout["prediction"]["predicted_loss"])
    assert_readable(fig, must_show_y=[r.final_val_loss for r in holdout["runs"]])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    relative = 100 * (holdout["loss"] / holdout["prediction"]["predicted_loss"] - 1)
    assert f"held-out budget, mean of {len(holdout['runs'])}: {relative:+.1f}%" in labels


def test_recipe_pilot_stars_every_interior_best_rate():
    from cot_lab.scaling import recipe_pilot

    shipped_pilot = recipe_pilot.load_recipe_pilot()
    fig = scaling_plots.recipe_pilot(shipped_pilot)
    assert_readable(fig)
    left, right = fig.axes
    # 3 widths x 2 beta2 on the left, 4 batches on the right; every shipped curve is a U, so each has its star
    assert len([line for line in left.lines if line.get_marker() == "o"]) == 6
    stars = [[line for line in ax.lines if line.get_marker() == "*" and len(line.get_xdata())] for ax in (left, right)]
    assert [len(s) for s in stars] == [6, 4]
    assert left.get_xscale() == right.get_xscale() == "log"


def test_log_axes_label_a_narrow_view_without_overprinting():
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.plot([1.5e4, 6e5], [1, 2])
    figures.log_scale(ax)
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.xaxis.get_minorticklabels() if t.get_text()]
    assert shown == ["$\\mathdefault{2\\times10^{4}}$", "$\\mathdefault{5\\times10^{4}}$",
                     "$\\mathdefault{2\\times10^{5}}$", "$\\mathdefault{5\\times10^{5}}$"]
    with pytest.raises(ValueError, match="which="):
        figures.log_scale(ax, "z")


# ------------------------------------------------------------------ notebooks 01 and 03


def test_accounting_figure():
    assert_readable(budget_plots.accounting_figure(seq_lens=(128, 8192), vocab_size=512))


def quality_frame() -> pd.DataFrame:
    """Shaped like study.quality_curves: every method starts from the same dense point."""
    rows = []
    for i, method in enumerate(("magnitude (per matrix)", "wanda (per row)", "heads", "mlp neurons")):
        for s in (0.0, 0.25, 0.5, 0.75):
            rows.append(dict(method=method, requested=s, achieved=s, val_loss=4.101 + (i + 1) * s**2))
    return pd.DataFrame(rows)


def test_quality_vs_sparsity():
    assert_readable(compress_plots.quality_vs_sparsity(quality_frame(), floor=3.03), must_show_y=[3.03])


def test_size_quality_frontier_names_points_that_share_a_size_without_overprinting():
    # Magnitude and Wanda at one sparsity share their bitmask size exactly and differ little in loss;
    # int8 and bf16 lose almost nothing: labels beside the points overprinted here.
    points = {"dense fp32": (1.0e6, 4.101), "bf16": (5.0e5, 4.102), "int8": (2.6e5, 4.106),
              "magnitude (per matrix) 50% (sparse)": (5.3e5, 4.19), "wanda (per row) 50% (sparse)": (5.3e5, 4.17),
              "heads 50%": (7.5e5, 4.55), "mlp neurons 50%": (7.0e5, 4.35),
              "magnitude (per matrix) 75% (sparse)": (2.9e5, 4.9), "wanda (per row) 75% (sparse)": (2.9e5, 4.88)}
    fig = compress_plots.size_quality_frontier(points)
    assert_readable(fig)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sorted(labels) == sorted([*points, "frontier: nothing smaller is better"])


def test_latency_ratios_names_the_baseline_line():
    frame = pd.DataFrame({"score_ratio": [1.0, 0.9, 0.7, 0.6, 1.4, 1.2],
                          "generate_ratio": [1.0, 1.0, 0.8, 0.7, 1.6, 1.1]},
                         index=["dense", "50% magnitude", "50% heads", "50% mlp", "int8", "bf16"])
    fig = compress_plots.latency_ratios(frame)
    assert_readable(fig, must_show_y=[1.0])
    assert "1 = as fast as dense" in [line.get_label() for line in fig.axes[0].lines]


# ------------------------------------------------------------------ tables


def test_tables_write_flops_counts_and_losses_for_reading(shipped):
    from cot_lab.scaling.sweep import runs_frame
    from cot_lab.ui.format import table

    frame = runs_frame(shipped["runs"])[["budget_flops", "n_params", "tokens", "tokens_per_param", "final_val_loss"]]
    out = table(frame)
    first = shipped["runs"][0]
    assert out.iloc[0].tolist() == ["5e11", f"{first.n_params:,}", f"{first.tokens:,}",
                                    f"{first.tokens / first.n_params:.3f}", f"{first.final_val_loss:.4f}"]
    assert out.iloc[0]["tokens"] == "3,500,160" and frame.iloc[0]["tokens"] == 3500160.0  # was printed '3500160.0'
    assert frame.iloc[0]["budget_flops"] == 5e11  # untouched: table() formats a copy


def test_tables_format_a_flops_index_tiny_seconds_and_missing_values():
    from cot_lab.ui.format import scientific, table

    frame = pd.DataFrame({"best run": [3.83571, 3.72884], "a_low": [0.488, np.nan], "method": ["x", "y"]},
                         index=pd.Index([3e10, 1.25e11], name="budget (FLOPs)"))
    out = table(frame, decimals=3)
    assert out.index.tolist() == ["3e10", "1.25e11"] and out.index.name == "budget (FLOPs)"
    assert out["best run"].tolist() == ["3.836", "3.729"] and out["a_low"].tolist() == ["0.488", "–"]
    assert out["method"].tolist() == ["x", "y"]
    seconds = table(pd.DataFrame({"score_s": [0.000123, 0.0456]}))["score_s"].tolist()
    assert seconds == ["0.000123", "0.045600"]  # three digits of the smallest, not '0.0001'
    assert [scientific(x) for x in (3e10, 1.25e11, 6.0e23, 0.0)] == ["3e10", "1.25e11", "6e23", "0"]


# ------------------------------------------------------------------ loss by skill (notebooks 00 and 02)
def test_skill_bars_and_skills_by_budget_read_the_shipped_pilot():
    from cot_lab.core.skills import SkillReport
    from cot_lab.scaling import pilot

    shipped_pilot = pilot.load_pilot("synthetic-v3")
    run = shipped_pilot["runs"][-1]["skills"]
    report = SkillReport(frame=pd.DataFrame(run["skills"]), units=None, floor=run["floor"], model=run["model"],
                         positions=run["positions"])
    fig = figures.skill_bars(report)
    assert_readable(fig)
    assert f"{report.model:.3f}" in fig.axes[0].get_title() and len(fig.axes[0].patches) == 2 * len(report.frame)
    excess = pilot.skills_by_budget(shipped_pilot)
    fig = scaling_plots.skills_by_budget(excess)
    assert_readable(fig)
    assert fig.axes[0].get_xscale() == "log" and len(fig.legends[0].get_texts()) == excess.shape[1]
