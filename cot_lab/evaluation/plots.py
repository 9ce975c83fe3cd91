"""Notebook 07's figures: contamination over training, memorisation against copies, a shift against its floors,
the gate's slices, junk and filtering. Each returns a matplotlib Figure (not pyplot)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from cot_lab.ui.figures import finish_axes

PLANTED_COLOUR, CLEAN_COLOUR, FLOOR_COLOUR = "#d62728", "#1f77b4", "black"
KIND_COLOURS = {"random": "#9467bd", "shuffled": "#ff7f0e", "boilerplate": "#2ca02c"}


def contamination_curves(history, *, floors: dict, gaps: dict, copies: int, title: str | None = None) -> Figure:
    """Left: loss over training of the planted rows and the clean rows (history: SliceLossCallback records), each
    set's exact floor ({"planted": , "clean": }, nats/token) dashed in its colour. Right: the final gap (clean minus
    planted, nats/token) against copies, this setting ringed."""
    if not history:
        raise ValueError("history is empty: give the slice-loss records of a run (SliceLossCallback.records)")
    fig = Figure(figsize=(10, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=(1.25, 1)))
    tokens = np.array([r["trained_tokens"] for r in history]) / 1e6
    for name, colour, label in (("planted", PLANTED_COLOUR, "planted validation rows"),
                                ("clean", CLEAN_COLOUR, "clean validation rows")):
        if name in history[0]:
            left.plot(tokens, [r[name] for r in history], "-o", ms=3, color=colour, label=label)
            left.axhline(floors[name], color=colour, ls="--", lw=1, label=f"exact floor of the {name} rows "
                                                                          f"{floors[name]:.3f}")
    values = [r[k] for r in history for k in ("planted", "clean") if k in r]
    low = min(floors.values())
    left.set_ylim(min(min(values), low) - 0.08, min(max(values), low + 1.6) + 0.05)
    finish_axes(left, xlabel="training tokens (millions)", ylabel="loss (nats/token)",
            title=title or f"{copies} copies of each planted row", legend="upper right")
    shown = sorted(c for c in gaps if c > 0)
    right.plot(shown, [gaps[c] for c in shown], "-o", color=PLANTED_COLOUR, label="clean minus planted, final")
    if 0 in gaps:
        right.axhline(gaps[0], color=CLEAN_COLOUR, ls=":", lw=1.2, label=f"clean run (0 copies): {gaps[0]:+.3f}")
    if copies in gaps and copies > 0:
        right.plot([copies], [gaps[copies]], "o", ms=14, mfc="none", mec="black", mew=1.5, label="this setting")
    finish_axes(right, xlabel="copies of each planted row in training", ylabel="loss gap (nats/token)",
            title="how far below the clean rows the planted rows fall", legend="upper left", log="x")
    return fig


def memorisation_plot(frame, *, fit=None, suffix: int, prefix: int, title: str | None = None) -> Figure:
    """Share of rows whose next `suffix` tokens greedy decoding reproduces after a `prefix`-token prompt, against
    their copies in training (log axis; `results.memorisation_frame`): the duplicated run, its deduplicated twin
    (each row once), the clean rows (never trained on) as a dotted level, and the log-linear fit if given."""
    fig = Figure(figsize=(6.8, 4.0), layout="constrained")
    ax = fig.subplots()
    seen = frame[frame.index > 0]
    ax.plot(seen.index, seen.exact, "o-", color=PLANTED_COLOUR, label="duplicated run: exact")
    ax.plot(seen.index, seen.leading, "^--", color=PLANTED_COLOUR, mfc="white", ms=5,
            label="duplicated run: share before the first miss")
    ax.plot(seen.index, seen.exact_deduplicated, "s-", color="#2ca02c", label="deduplicated (each row once): exact")
    ax.axhline(float(frame.loc[0, "exact"]), color=CLEAN_COLOUR, ls=":", lw=1.2,
               label=f"clean rows, never seen: {float(frame.loc[0, 'exact']):.0%}")
    if fit is not None:
        grid = np.geomspace(seen.index.min(), seen.index.max(), 50)
        ax.plot(grid, fit.rate(grid), "--", color="grey", lw=1, label="log-linear fit (Carlini et al.)")
    ax.set_ylim(-0.03, 1.03)
    finish_axes(ax, xlabel="copies of the row in training", ylabel=f"share reproduced ({suffix} tokens)",
            title=title or f"extractable memorisation: {prefix}-token prompt, greedy", legend="upper left", log="x")
    return fig


def junk_costs(frame, *, title: str | None = None) -> Figure:
    """The clean rows' loss cost (nats/token over the clean run at equal FLOPs) against the share of junk rows,
    one line per kind (`results.junk_frame`); each kind's filtered run as a star at its share."""
    fig = Figure(figsize=(6.8, 4.0), layout="constrained")
    ax = fig.subplots()
    for kind, part in frame.groupby("kind", sort=False):
        colour = KIND_COLOURS.get(kind, "grey")
        raw = part[~part.filtered].sort_values("fraction")
        ax.plot([0.0, *raw.fraction], [0.0, *raw.cost], "o-", color=colour, label=f"{kind} junk")
        done = part[part.filtered]
        ax.plot(done.fraction, done.cost, "*", ms=14, color=colour, mec="black",
                label=f"{kind} junk, perplexity-filtered")
    ax.axhline(0.0, color="black", lw=0.8, label="clean run")
    finish_axes(ax, xlabel="share of training rows replaced by junk", ylabel="loss cost on clean rows (nats/token)",
            title=title or "what junk costs at equal compute", legend="upper left")
    return fig


def shift_bars(table, *, title: str | None = None) -> Figure:
    """One bar group per slice (in distribution, shifted): the exact floor of those documents, a perfect model of
    the unshifted language, and the trained model; the excess above the floor written on each model bar."""
    fig = Figure(figsize=(6.8, 4.0), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(table))
    bars = (("floor", "exact floor of these documents", "#7f7f7f"),
            ("unshifted", "perfect model of the training language", "#bcbd22"),
            ("loss", "the trained model", CLEAN_COLOUR))
    for i, (column, label, colour) in enumerate(bars):
        ax.bar(x + (i - 1) * 0.26, table[column], 0.26, color=colour, label=label)
    for xi, (loss, excess) in enumerate(zip(table["loss"], table["excess"])):
        ax.annotate(f"+{excess:.3f} above floor", (xi + 0.26, loss), textcoords="offset points", xytext=(0, 4),
                    ha="center", fontsize=8)
    low = float(min(table["floor"].min(), table["unshifted"].min(), table["loss"].min()))
    high = float(max(table["floor"].max(), table["unshifted"].max(), table["loss"].max()))
    ax.set_ylim(low - 0.15, high + 0.12)
    ax.set_xticks(x, [f"{i}\n({s})" for i, s in zip(table.index, table["slice"])])
    finish_axes(ax, xlabel="", ylabel="loss (nats/token)", title=title or str(table.index.name), legend="upper left")
    return fig


def gate_forest(report, *, title: str | None = None) -> Figure:
    """Each slice's change (candidate - baseline, nats/token) with its bootstrap interval; the tolerance band
    shaded; a regression in red, an improvement in green."""
    fig = Figure(figsize=(6.8, 0.6 * len(report.slices) + 1.6), layout="constrained")
    ax = fig.subplots()
    colours = {"worse": "#d62728", "better": "#2ca02c", "no change": "#7f7f7f"}
    ax.axvspan(-report.tolerance, report.tolerance, color="#dddddd", label=f"tolerance ±{report.tolerance:g}")
    ax.axvline(0, color="black", lw=0.8, label="no change")
    for verdict, colour in colours.items():
        hits = [(i, s) for i, s in enumerate(report.slices) if s.verdict == verdict]
        if hits:
            ys = [i for i, _ in hits]
            xs = [s.difference for _, s in hits]
            err = np.array([[s.difference - s.lo for _, s in hits], [s.hi - s.difference for _, s in hits]])
            ax.errorbar(xs, ys, xerr=err, fmt="o", color=colour, capsize=4, label=verdict)
    ax.set_yticks(range(len(report.slices)),
                  [f"{s.name}{' (headline)' if s.name == report.headline else ''}" for s in report.slices])
    ax.invert_yaxis()
    finish_axes(ax, xlabel=f"candidate - baseline (nats/token), {report.confidence:.0%} interval over documents",
            ylabel="", title=title or ("passes" if report.passed else "fails: " + ", ".join(report.failed)),
            legend="lower right")
    return fig


def dedup_found(jaccard, found, *, bands: int, rows: int, title: str | None = None) -> Figure:
    """The share of planted near-duplicate pairs MinHash LSH found, per bin of exact Jaccard (points, with the
    pairs in each bin), against the S-curve 1 - (1 - s^rows)^bands it should follow; the threshold dotted."""
    jaccard, found = np.asarray(jaccard, float), np.asarray(found, bool)
    fig = Figure(figsize=(6.8, 4.0), layout="constrained")
    ax = fig.subplots()
    grid = np.linspace(0, 1, 201)
    ax.plot(grid, 1 - (1 - grid ** rows) ** bands, "-", color="grey", label=f"S-curve, {bands} bands x {rows} rows")
    edges = np.linspace(0.25, 1.0, 16)
    centre, rate, count = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (jaccard >= lo) & ((jaccard < hi) | (hi == 1.0))
        if inside.any():
            centre.append(float(jaccard[inside].mean()))
            rate.append(float(found[inside].mean()))
            count.append(int(inside.sum()))
    ax.plot(centre, rate, "o", color=PLANTED_COLOUR, label="planted pairs found (share per bin)")
    threshold = (1 / bands) ** (1 / rows)
    ax.axvline(threshold, color="black", ls=":", lw=1, label=f"threshold (1/{bands})^(1/{rows}) = {threshold:.3f}")
    ax.set_ylim(-0.03, 1.1)
    finish_axes(ax, xlabel="exact Jaccard similarity of the pair (5-gram shingles)", ylabel="share found by LSH",
            title=title or f"MinHash LSH on {len(jaccard)} planted pairs", legend="upper left")
    return fig
