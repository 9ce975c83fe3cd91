"""Notebook 06's figures: dense against MoE at matched FLOPs, memory and wall-clock; the router's load and balance;
serving memory against decode speed. Each returns a matplotlib Figure (not pyplot)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from cot_lab.ui.figures import finish_axes

BUDGET_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
ARCH_STYLE = {"dense": dict(marker="o", ls="--", mfc="white"), "moe": dict(marker="s", ls="-")}
ARCH_NAME = {"dense": "dense", "moe": "MoE"}


def _budget_curves(ax, points, column: str, flops_table=None) -> None:
    budgets = sorted(points.budget_flops[points.arch == "moe"].unique())
    for first, colour, budget in zip((True, False, False, False), BUDGET_COLOURS, budgets):
        for arch in ("dense", "moe"):
            p = points[(points.arch == arch) & (points.budget_flops == budget)]
            if arch == "dense" and column == "N_active":
                p = p[p.in_window]
            p = p.sort_values(column)
            ax.plot(p[column], p["loss"], color=colour, ms=6, lw=1.4, **ARCH_STYLE[arch],
                    label=f"{ARCH_NAME[arch]} at {budget:.0e} FLOPs")
        if flops_table is not None:
            row = flops_table[flops_table.budget_flops == budget].iloc[0]
            for arch in ("dense", "moe"):
                if np.isfinite(row[f"{arch}_N_opt"]):
                    ax.plot([row[f"{arch}_N_opt"]], [row[f"{arch}_L_opt"]], "*", ms=13, color=colour, mec="black",
                            mfc="white" if arch == "dense" else colour,
                            label=f"{ARCH_NAME[arch]} parabola's vertex" if first else None)


def isoflop_comparison(points, flops_table, *, title: str | None = None) -> Figure:
    """Loss against active parameters at each budget, dense (dashed, open) and MoE (solid, filled) on the same rungs,
    each parabola's vertex starred: at equal FLOPs, the lower curve is the better architecture."""
    fig = Figure(figsize=(7.8, 4.8), layout="constrained")
    ax = fig.subplots()
    _budget_curves(ax, points, "N_active", flops_table)
    finish_axes(ax, log="x", xlabel="active parameters (what one token passes through)",
            ylabel="final validation loss (nats/token)",
            title=title or "matched active FLOPs: dense vs MoE at each budget (stars: parabola vertices)",
            legend="upper center")
    low, high = points.loss.min(), points[points.in_window].loss.max()
    ax.set_ylim(low - 0.05 * (high - low), high + 0.8 * (high - low))
    return fig


def memory_comparison(points, memory_table, *, title: str | None = None) -> Figure:
    """Loss against total parameters (the memory the weights take), every dense rung of the sweep and the MoE runs;
    each budget's best MoE ringed with the best dense model that fits in as many parameters."""
    fig = Figure(figsize=(10.5, 4.8), layout="constrained")
    ax = fig.subplots()
    _budget_curves(ax, points, "N_total")
    for i, (colour, (_, row)) in enumerate(zip(BUDGET_COLOURS, memory_table.iterrows())):
        ax.axvline(row.memory_params, color=colour, ls=":", lw=1,
                   label="the limit: the best MoE's total parameters" if i == 0 else None)
        ax.plot([row.dense_N_total], [row.dense_loss], "D", ms=8, color=colour, mec="black",
                label=f"best dense within {row.memory_params / 1e3:.0f}K parameters ({row.budget_flops:.0e})")
    finish_axes(ax, log="x", xlabel="total parameters (all experts: what memory must hold)",
            ylabel="final validation loss (nats/token)", title=title or "matched memory: loss against total parameters",
            legend=None)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: every rung is drawn
    return fig


def wall_clock_comparison(timing, wall_table, *, title: str | None = None) -> Figure:
    """Left: milliseconds per training step of each dense / MoE pair on this machine. Right: each budget's best dense
    loss against the MoE's at the FLOPs the same seconds buy it (C / r), extrapolated points open."""
    fig = Figure(figsize=(9.5, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    rungs = np.arange(len(timing))
    dense_ms = [t["dense_ms_per_step"] for t in timing]
    moe_ms = [t["moe_ms_per_step"] for t in timing]
    left.bar(rungs - 0.2, dense_ms, 0.4, color="#7f7f7f", label="dense")
    left.bar(rungs + 0.2, moe_ms, 0.4, color="#1f77b4", label="MoE")
    for x, t in zip(rungs, timing):
        left.annotate(f"{t['moe_over_dense']:.2f}x", (x + 0.2, t["moe_ms_per_step"]), ha="center", va="bottom",
                      fontsize=8)
    left.set_xticks(rungs, [f"d{t['d_model']}" for t in timing])
    left.set_ylim(0, 1.25 * max(moe_ms + dense_ms))
    finish_axes(left, log="", xlabel="ladder rung (d_model)", ylabel="ms per training step",
            title="one step on this machine", legend="upper left")
    c = wall_table.budget_flops.to_numpy(float)
    right.plot(c, wall_table.dense_loss, "o--", color="#7f7f7f", mfc="white", label="dense, best at C FLOPs")
    solid = ~wall_table.extrapolated.to_numpy(bool)
    right.plot(c, wall_table.moe_loss, "-", color="#1f77b4", label="MoE in the same seconds (C / r FLOPs)")
    right.plot(c[solid], wall_table.moe_loss[solid], "s", color="#1f77b4")
    if (~solid).any():
        right.plot(c[~solid], wall_table.moe_loss[~solid], "s", color="#1f77b4", mfc="white",
                   label="MoE, extrapolated below its budgets")
    finish_axes(right, log="x", xlabel="dense training budget C (FLOPs) = the seconds both get",
            ylabel="best loss (nats/token)", title=title or "matched wall-clock", legend="upper right")
    return fig


def router_load(history, *, n_experts: int, title: str | None = None, others: dict | None = None) -> Figure:
    """Left: each expert's share of the routed assignments at the end of training, one bar group per layer, the even
    share 1/n_experts dashed. Right: the Switch balance loss (mean over layers; 1 is perfect balance) over training,
    for this run and, dotted, `others` ({label: history}) for comparison. history: RouterStats records with "trained_tokens" (the run's tokens so far)."""
    from cot_lab.moe.router import RouterStats

    if not history:
        raise ValueError("history is empty: give the router measurements of a run (RouterCallback records)")
    last = RouterStats.from_record(history[-1])
    fig = Figure(figsize=(9.5, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=(1.2, 1)))
    n_layer = last.counts.shape[0]
    width = 0.8 / n_layer
    experts = np.arange(n_experts)
    for layer in range(n_layer):
        left.bar(experts + (layer - (n_layer - 1) / 2) * width, last.load[layer], width,
                 label=f"layer {layer + 1}", color=BUDGET_COLOURS[layer % len(BUDGET_COLOURS)])
    left.axhline(1 / n_experts, color="black", ls="--", lw=1, label=f"even: 1/{n_experts}")
    left.set_xticks(experts, [str(e) for e in experts])
    left.set_ylim(0, max(1.35 * float(last.load.max()), 1.5 / n_experts))
    dead = sum(len(d) for d in last.dead_experts)
    finish_axes(left, log="", xlabel="expert", ylabel="share of routed assignments",
            title=f"load at the end ({dead} dead expert-layers)", legend="upper right")
    for label, records, style in [("this run", history, "-")] + [(k, v, ":") for k, v in (others or {}).items()]:
        tokens = [r["trained_tokens"] / 1e6 for r in records]
        right.plot(tokens, [float(np.mean(r["balance_loss"])) for r in records], style, lw=1.6, label=label)
    right.axhline(1.0, color="black", ls="--", lw=1, label="perfect balance (1)")
    finish_axes(right, log="", xlabel="training tokens (millions)", ylabel="balance loss N_E sum f_i P_i",
            title=title or "balance over training", legend="upper right")
    return fig


def serving_tradeoff(serving, *, batch_size: int = 1, title: str | None = None) -> Figure:
    """Memory the weights take (all experts) against measured decode tokens/s at `batch_size`, each dense / MoE pair
    joined by an arrow: MoE keeps more in memory for the same active FLOPs per token."""
    fig = Figure(figsize=(7.2, 4.4), layout="constrained")
    ax = fig.subplots()
    for colour, row in zip(BUDGET_COLOURS + ("#9467bd", "#8c564b", "#e377c2"), serving):
        dense, moe = row["dense"], row["moe"]
        key = str(batch_size) if str(batch_size) in dense["decode_tokens_per_s"] else batch_size
        xd, yd = dense["memory_bytes"] / 1e6, dense["decode_tokens_per_s"][key]
        xm, ym = moe["memory_bytes"] / 1e6, moe["decode_tokens_per_s"][key]
        ax.plot([xd], [yd], "o", color=colour, mfc="white", ms=8, label=f"d{row['d_model']} dense")
        ax.plot([xm], [ym], "s", color=colour, ms=8, label=f"d{row['d_model']} MoE")
        ax.annotate("", (xm, ym), (xd, yd), arrowprops=dict(arrowstyle="->", color=colour, lw=1))
    finish_axes(ax, log="x", xlabel="weights in memory (MB, fp32)", ylabel=f"decode tokens/s at batch {batch_size}",
            title=title or "serving: memory against decode speed", legend="upper right")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high + 0.6 * (high - low))
    return fig
