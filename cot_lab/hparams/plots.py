"""Notebook 05's figures: loss against learning rate, steps against tokens to a loss, B_simple along a run,
and three answers to "how large a batch?" on one axis. Each returns a matplotlib Figure (not pyplot)."""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from cot_lab.hparams.critical import CriticalBatch
from cot_lab.hparams.deepseek import FITTED_FROM_FLOPS, deepseek_batch_tokens
from cot_lab.ui.figures import finish_axes

WIDTH_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


def lr_curves(frame, *, chosen_lr: float | None = None, measured=(), title: str | None = None) -> Figure:
    """Final validation loss (nats/token) against peak learning rate, one line per width; each width's best
    rate (the parabola's vertex in log lr, as the recipe pilot reads it) starred.

    frame: rows with d_model, lr, final_val_loss (the recipe pilot's runs at one batch and beta2); chosen_lr: a
    rate to mark (a panel's slider); measured: Runs trained at chosen points, drawn as crosses."""
    from cot_lab.scaling.recipe_pilot import best_lr

    if len(frame) == 0 or not {"d_model", "lr", "final_val_loss"} <= set(frame.columns):
        raise ValueError("frame must have rows with d_model, lr and final_val_loss (e.g. the recipe pilot's runs)")
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    for colour, (d, g) in zip(WIDTH_COLOURS, frame.sort_values("lr").groupby("d_model")):
        ax.plot(g["lr"], g["final_val_loss"], "o-", color=colour, label=f"d_model {d}")
        lr, loss, interior = best_lr(g["lr"], g["final_val_loss"])
        ax.plot([lr], [loss], "*", ms=14, color=colour, mec="black",
                label=f"best rate at d_model {d}: {lr:.2g}" + ("" if interior else " (edge of the grid)"))
    if chosen_lr is not None:
        ax.axvline(chosen_lr, color="#888888", ls=":", lw=1.2, label=f"your rate: {chosen_lr:.3g}")
    for run in measured:
        ax.plot([run.hparams["lr"]], [run.final_val_loss], "X", ms=10, color="black",
                label=f"trained now: d_model {run.config.d_model} at {run.hparams['lr']:.3g}")
    finish_axes(ax, legend_size=8, log="x", xlabel="peak learning rate", ylabel="final validation loss (nats/token)",
            title=title or "loss against learning rate at one budget", legend="upper center")
    low, high = frame["final_val_loss"].min(), frame["final_val_loss"].max()
    ax.set_ylim(low - 0.05 * (high - low), high + 0.9 * (high - low))  # room above the curves for the legend
    return fig


def steps_vs_tokens(critical: CriticalBatch, *, chosen: int | None = None, title: str | None = None) -> Figure:
    """Optimizer steps against tokens to reach the target loss, one point per batch size, with McCandlish et al.'s
    fitted trade-off S = S_min + E_min / B, perfect scaling from the smallest batch, and the critical batch both
    ways (McCandlish's B_crit = E_min / S_min, Zhang et al.'s 20% over linear scaling); `chosen`, a batch size of
    the points, is ringed (a panel's slider)."""
    seq = critical.seq_len
    b = np.asarray(critical.batch_sizes, float)
    s = np.asarray(critical.steps, float)
    ok = np.isfinite(s)
    if ok.sum() < 2:
        raise ValueError("critical must have at least 2 batch sizes that reached the target")
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.subplots()
    tokens = s * b * seq
    ax.plot(tokens[ok], s[ok], "o", color="#1f77b4", ms=7, label="measured (one point per batch size)")
    for bi, ti, si in zip(b[ok], tokens[ok], s[ok]):
        ax.annotate(f"{bi:g}", (ti, si), textcoords="offset points", xytext=(6, 4), fontsize=8)
    if chosen is not None and chosen in critical.batch_sizes and math.isfinite(s[list(b).index(chosen)]):
        i = list(b).index(chosen)
        ax.plot([tokens[i]], [s[i]], "o", ms=16, mfc="none", mec="black", mew=1.5, label=f"your batch: {chosen}")
    grid = np.geomspace(b[ok].min() / 2, b[ok].max() * 2, 100)
    if critical.s_min > 0:  # else no hyperbola fits: every batch measured scales almost perfectly
        fitted = critical.s_min + critical.e_min / grid
        ax.plot(fitted * grid * seq, fitted, "-", color="#444444", lw=1.2,
                label="McCandlish et al.: (S/S_min - 1)(E/E_min - 1) = 1")
    s0, b0 = s[ok][0], b[ok][0]
    ax.plot(s0 * b0 * seq * np.ones_like(grid), s0 * b0 / grid, ":", color="#2ca02c", lw=1.4,
            label=f"perfect scaling from batch {b0:g} (same tokens, fewer steps)")
    crit = critical.mccandlish
    if math.isfinite(crit) and crit > 0:
        sc = critical.s_min + critical.e_min / crit  # = 2 S_min
        ax.plot([sc * crit * seq], [sc], "D", color="#d62728", ms=9,
                label=f"B_crit = E_min / S_min = {crit:.3g} sequences ({crit * seq:,.0f} tokens)")
    if math.isfinite(critical.zhang):
        sz = np.interp(math.log(critical.zhang), np.log(b[ok]), s[ok])
        ax.plot([sz * critical.zhang * seq], [sz], "s", color="#9467bd", ms=9,
                label=f"Zhang et al. (20% over linear): {critical.zhang:.3g} sequences")
    finish_axes(ax, legend_size=8, log="xy", xlabel=f"tokens to reach {critical.target_loss:.3f} nats/token",
            ylabel="optimizer steps to reach it", title=title or "steps against tokens: where a bigger batch stops "
            "paying", legend="upper right")
    return fig


def noise_scale_trajectory(history, run=None, *, title: str | None = None) -> Figure:
    """B_simple (tokens) against tokens trained, measured along one run; with `run`, its validation loss above.

    history: rows with tokens and b_simple_tokens (`NoiseScaleCallback.frame()`, or the shipped noise history)."""
    rows = [h for h in (history.to_dict(orient="records") if hasattr(history, "to_dict") else history)]
    if not rows:
        raise ValueError("history is empty: train with a NoiseScaleCallback first (its .frame())")
    fig = Figure(figsize=(7.5, 5.2 if run is not None else 3.6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True) if run is not None else [fig.subplots()]
    if run is not None:
        curve = np.asarray(run.val_curve, float)
        axes[0].plot(curve[:, 1], curve[:, 2], "o-", color="#444444", ms=3, label="validation loss")
        axes[0].set_ylabel("loss (nats/token)")
        axes[0].legend(fontsize=8, loc="upper right")
        axes[0].grid(True, alpha=0.3)
    ax = axes[-1]
    t = np.array([h["tokens"] for h in rows], float)
    bs = np.array([h["b_simple_tokens"] for h in rows], float)
    ax.plot(t, bs, "o-", color="#1f77b4", ms=4, label="B_simple = tr(Sigma) / |G|^2, in tokens (moving average)")
    ax.set_ylim(0, np.nanmax(bs) * 1.35)
    ax.set_xlabel("tokens trained")
    ax.set_ylabel("B_simple (tokens)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    axes[0].set_title(title or "the gradient noise scale grows as the loss falls", fontsize=10)
    return fig


def three_answers(flops: float, *, b_simple_tokens: float, mccandlish_tokens: float, zhang_tokens: float,
                  kit_batch_tokens: float, title: str | None = None) -> Figure:
    """How large a batch at `flops` FLOPs? DeepSeek LLM's B_opt(C) (dashed where extrapolated below its fitted
    budgets) against the measured B_simple, the empirical critical batch both ways, and the kit's batch rule."""
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.subplots()
    low = min(flops / 10, 1e10)
    below = np.geomspace(low, FITTED_FROM_FLOPS, 50)
    above = np.geomspace(FITTED_FROM_FLOPS, 1e20, 30)
    ax.plot(below, deepseek_batch_tokens(below), "--", color="#444444", lw=1.2,
            label="DeepSeek LLM B_opt = 0.292 C^0.327, extrapolated")
    ax.plot(above, deepseek_batch_tokens(above), "-", color="#444444", lw=1.6,
            label="DeepSeek LLM, where it was fitted (1e17 FLOPs and up)")
    marks = [("o", "#1f77b4", "B_simple measured along the run (end)", b_simple_tokens),
             ("D", "#d62728", "critical batch, McCandlish fit", mccandlish_tokens),
             ("s", "#9467bd", "critical batch, Zhang et al. (20% over linear)", zhang_tokens),
             ("^", "#2ca02c", "the kit's batch rule (recipe pilot)", kit_batch_tokens)]
    for marker, colour, label, value in marks:
        if math.isfinite(value) and value > 0:
            ax.plot([flops], [value], marker, color=colour, ms=9, alpha=0.85, label=f"{label}: {value:,.0f} tokens")
    finish_axes(ax, legend_size=8, log="xy", xlabel="training compute C (FLOPs)", ylabel="batch size (tokens)",
            title=title or "three answers to one question: how large a batch?", legend="upper left")
    return fig


PARAMETRISATION_TITLES = {"standard": "standard parametrisation", "mup": "muP (base width 32)"}


def width_transfer(sweeps: dict, *, title: str | None = None) -> Figure:
    """Loss against peak learning rate at each width, one panel per parametrisation, every width's best rate
    starred and joined by a vertical band: where the stars line up, the optimum transfers.

    sweeps: {"standard": {width: HparamSweep}, "mup": {width: HparamSweep}} (`load_width_pilot`, or `width_sweeps`)."""
    names = [n for n in ("standard", "mup") if n in sweeps] or list(sweeps)
    if not names or not all(sweeps[n] for n in names):
        raise ValueError("sweeps must map a parametrisation ('standard', 'mup') to {width: HparamSweep}")
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, names):
        bests = []
        for colour, (width, sweep) in zip(WIDTH_COLOURS, sorted(sweeps[name].items())):
            done = [(v, r.final_val_loss) for v, r in zip(sweep.values(), sweep.runs) if r.status == "ok"]
            ax.plot(*zip(*done), "o-", color=colour, label=f"d_model {width}")
            diverged = [v for v, r in zip(sweep.values(), sweep.runs) if r.status == "diverged"]
            if diverged:
                ax.plot(diverged, [max(loss for _, loss in done)] * len(diverged), "x", color=colour, ms=9,
                        label=f"d_model {width}: diverged")
            lr, loss, _ = sweep.best()
            bests.append(lr)
            ax.plot([lr], [loss], "*", ms=15, color=colour, mec="black", label=f"best at d_model {width}: {lr:.2g}")
        ax.axvspan(min(bests), max(bests), color="#bbbbbb", alpha=0.35,
                   label=f"best rates span x{max(bests) / min(bests):.2g}")
        finish_axes(ax, legend_size=8, log="x", xlabel="peak learning rate", ylabel="final validation loss (nats/token)",
                title=PARAMETRISATION_TITLES.get(name, name), legend="upper center")
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    low = min(r.final_val_loss for n in names for s in sweeps[n].values() for r in s.runs if r.status == "ok")
    high = max(r.final_val_loss for n in names for s in sweeps[n].values() for r in s.runs if r.status == "ok")
    axes[0].set_ylim(low - 0.05 * (high - low), high + 0.8 * (high - low))  # room above the curves for the legend
    axes[0].set_ylabel("final validation loss (nats/token)")
    fig.suptitle(title or "does the best learning rate move as the model widens? (same tokens at every width)",
                 fontsize=11)
    return fig


def coordinate_check_plot(checks: dict, *, title: str | None = None) -> Figure:
    """Yang et al.'s coordinate check: how far each layer's activations moved per coordinate after the check's last
    step, against width, one panel per parametrisation (log-log: flat lines are what muP promises).

    checks: {"standard"/"mup": DataFrame of width, step, layer, change} (`coordinate_check`, or the shipped set)."""
    names = [n for n in ("standard", "mup") if n in checks] or list(checks)
    if not names or any(len(checks[n]) == 0 for n in names):
        raise ValueError("checks must map a parametrisation to a coordinate_check(...) frame")
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, len(names), sharey=True, squeeze=False)[0]
    for ax, name in zip(axes, names):
        frame = checks[name]
        last = frame[frame.step == frame.step.max()]
        for colour, (layer, g) in zip(("#444444", *WIDTH_COLOURS), last.groupby("layer", sort=False)):
            g = g.sort_values("width")
            slope = np.polyfit(np.log(g.width), np.log(g.change), 1)[0]
            ax.plot(g.width, g.change, "o-", color=colour, label=f"{layer}: ~ width^{slope:.2f}")
        finish_axes(ax, legend_size=8, log="xy", xlabel="width (d_model)", ylabel="mean |change| per coordinate",
                title=f"{PARAMETRISATION_TITLES.get(name, name)}, after step {int(frame.step.max())}",
                legend="upper left")
    low = min(float(checks[n].change.min()) for n in names)
    high = max(float(checks[n].change.max()) for n in names)
    axes[0].set_ylim(low / 2, high * (high / low) ** 0.8)  # room above the lines (log axis) for the legend
    axes[0].set_ylabel("activation change per coordinate")
    fig.suptitle(title or "coordinate check: does each layer move the same at every width?", fontsize=11)
    return fig
