"""Figures of notebook 03, one function each, returning a matplotlib Figure (never pyplot: see cot_lab.ui.figures)."""
from __future__ import annotations

from matplotlib.figure import Figure

from cot_lab.ui.figures import FLOOR_COLOUR, log_scale


def quality_vs_sparsity(curves, *, floor: float | None = None, figsize=(7.6, 3.8)) -> Figure:
    """Validation loss (nats/token) against achieved sparsity, one line per method (`quality_curves` output)."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    for method, part in curves.groupby("method", sort=False):
        part = part.sort_values("achieved")
        ax.plot(part["achieved"], part["val_loss"], marker="o", label=method)
    if floor is not None:
        ax.axhline(floor, color=FLOOR_COLOUR, linestyle="--", linewidth=1, label="entropy floor")
    ax.set_xlabel("fraction removed (weights, heads or neurons)")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("What pruning costs in quality")
    # beside the axes: measured values move from run to run, and a legend inside would cover some of them
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    ax.grid(alpha=0.3)
    return fig


MARKERS = "osD^vPX<>"


def size_quality_frontier(points, *, size: str = "disk_bytes", figsize=(7.6, 4.0)) -> Figure:
    """Validation loss (nats/token) against size (bytes, log scale) for labelled points {label: (bytes, loss)},
    with the lower-left frontier (no other point is both smaller and better) drawn through.

    Each point gets its own colour and marker, named in a legend beside the axes: quantized and pruned
    variants often share a size or a loss, so labels written next to the points would overprint.
    """
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    items = sorted(points.items(), key=lambda kv: kv[1][0])
    for i, (label, (nbytes, loss)) in enumerate(items):
        ax.scatter(nbytes, loss, s=30, color=f"C{i % 10}", marker=MARKERS[i % len(MARKERS)], label=label, zorder=3)
    frontier, best = [], float("inf")
    for _, (nbytes, loss) in items:
        if loss < best:
            frontier.append((nbytes, loss))
            best = loss
    ax.step([f[0] for f in frontier], [f[1] for f in frontier], where="post", color=FLOOR_COLOUR, alpha=0.5,
            label="frontier: nothing smaller is better")
    log_scale(ax)
    ax.set_xlabel(f"size ({size.replace('_', ' ')})")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title("Size against quality")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return fig


def latency_ratios(frame, *, figsize=(7.6, 3.6)) -> Figure:
    """Latency of each model relative to the first (1 = as fast; below 1 = faster), for scoring a batch and for
    generating tokens (`compare` output: columns score_ratio, generate_ratio), measured on this device."""
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    labels = list(frame.index)
    x = range(len(labels))
    width = 0.38
    ax.bar([i - width / 2 for i in x], frame["score_ratio"], width, label="score a batch")
    ax.bar([i + width / 2 for i in x], frame["generate_ratio"], width, label="generate tokens")
    ax.axhline(1.0, color=FLOOR_COLOUR, linewidth=1, label=f"1 = as fast as {labels[0]}")
    ax.set_xticks(list(x), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"time / time of {labels[0]}")
    ax.set_title("Latency on this device (median of repeats)")
    # beside the axes: measured values move from run to run, and a legend inside would cover some of them
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return fig
