"""Figures for the notebooks: one function per figure, each returning a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure`, not pyplot, so they are never tracked by
pyplot's global figure list (nothing leaks, nothing is shown twice) and no rcParams change.
In a notebook, run `%matplotlib inline` once and a returned Figure displays itself.
"""
from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from cot_lab.ui.format import human

FLOOR_COLOUR = "#444444"


def _minor_log_label(axis):
    """A minor-tick formatter for a log `axis`: matplotlib labels every minor tick when the view holds no power
    of ten, and on a narrow figure 3 and 4 x 10^k overprint. This labels 2 and 5 x 10^k on views under two
    decades, every tick on views under a factor of 4, and none on wider views (the powers of ten suffice)."""

    def label(x, pos=None):
        low, high = sorted(axis.get_view_interval())
        if x <= 0 or low <= 0 or high / low > 100:
            return ""
        exponent = math.floor(math.log10(x) + 1e-9)
        coefficient = x / 10 ** exponent
        if abs(coefficient - round(coefficient)) > 1e-6 or (high / low >= 4 and round(coefficient) not in (2, 5)):
            return ""
        return f"$\\mathdefault{{{round(coefficient)}\\times10^{{{exponent}}}}}$"

    return FuncFormatter(label)


def log_scale(ax, which: str = "x") -> None:
    """Put `ax` on a log scale along `which` ("x", "y" or "xy"), with minor-tick labels that never overprint."""
    for name in which:
        if name not in "xy":
            raise ValueError(f"which={which!r} must be 'x', 'y' or 'xy'")
        axis = ax.xaxis if name == "x" else ax.yaxis
        (ax.set_xscale if name == "x" else ax.set_yscale)("log")
        axis.set_minor_formatter(_minor_log_label(axis))


def finish_axes(ax, *, xlabel: str, ylabel: str, title: str, legend: str | None = "best", log: str = "",
                legend_size: float = 7.5) -> None:
    """The kit's axes finish: log scales along `log` ("", "x", "y", "xy"), labels, a light major grid, the legend at
    `legend` (None: no legend) and a small title."""
    for which in log:
        log_scale(ax, which)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)
    if legend:
        ax.legend(fontsize=legend_size, loc=legend)
    ax.set_title(title, fontsize=10)


def _label(run) -> str:
    n = run.n_params
    size = f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}K"
    budget = run.budget
    amount = f"{budget['value']:.2g} {budget['kind']}" if budget["kind"] != "seconds" else f"{budget['value']:g} s"
    return f"{size} params, {amount}"


def _curves(runs_or_curves) -> list[tuple[str, list, list]]:
    """Normalise the accepted inputs to [(label, train_curve, val_curve)], curves as [[step, tokens, loss], ...]."""
    if hasattr(runs_or_curves, "train_curve"):
        runs_or_curves = [runs_or_curves]
    if isinstance(runs_or_curves, Mapping):
        out = []
        for label, item in runs_or_curves.items():
            if hasattr(item, "train_curve"):
                out.append((str(label), item.train_curve, item.val_curve))
            elif isinstance(item, Sequence) and len(item) == 2:
                out.append((str(label), list(item[0]), list(item[1])))
            else:
                raise ValueError(f"runs_or_curves[{label!r}] must be a Run or a (train_curve, val_curve) pair "
                                 f"of [[step, tokens, loss], ...] lists; got {type(item).__name__}")
        return out
    if isinstance(runs_or_curves, Sequence) and not isinstance(runs_or_curves, str) and runs_or_curves \
            and all(hasattr(r, "train_curve") for r in runs_or_curves):
        return [(_label(r), r.train_curve, r.val_curve) for r in runs_or_curves]
    raise ValueError(f"runs_or_curves={runs_or_curves!r:.80} must be a Run, a list of Runs, or a mapping "
                     f"label -> Run or (train_curve, val_curve)")


def _smooth(values: list[float], half_window: int = 10) -> list[float]:
    """Centred moving average over up to 2 * half_window + 1 points: a trailing average lags a falling loss and
    sits above every point measured at the same step. Near the start the window shrinks symmetrically, so the
    first value (near ln(vocabulary)) stays; at the end, where the curve is flat, it is cut off one-sided."""
    total = [0.0]
    for v in values:
        total.append(total[-1] + v)
    out = []
    for i in range(len(values)):
        half = min(half_window, i)
        lo, hi = i - half, min(len(values), i + half + 1)
        out.append((total[hi] - total[lo]) / (hi - lo))
    return out


def _half_window(n_points: int) -> int:
    return min(10, n_points // 20)  # a wide window would flatten a short run's fall


def _zoom_limits(curves) -> tuple[float, float] | None:
    """A y-range for the last 80% of every curve's tokens, or None where that is most of the whole range anyway."""
    later, every = [], []
    for _, train, val in curves:
        # Smoothed, as drawn: the raw losses' noise would stretch the zoom over nothing but noise.
        rows = [[*r[:2], smooth] for r, smooth in zip(train, _smooth([r[2] for r in train], _half_window(len(train))))]
        rows += val
        if rows:
            start = 0.2 * max(r[1] for r in rows)
            later += [r[2] for r in rows if r[1] >= start]
            every += [r[2] for r in rows]
    if not later or max(every) == min(every):
        return None
    low, high = min(later), max(later)
    # The zoom earns a panel only where the plunge from ln(vocabulary) would squash the rest of the run.
    if high - low > 0.3 * (max(every) - min(every)):
        return None
    pad = 0.08 * max(high - low, 0.01)
    return low - pad, high + pad


def _draw_losses(ax, curves, floor: float | None) -> None:
    """Every curve's raw and smoothed training loss, its validation points and the floor, labelled for a legend."""
    for i, (label, train, val) in enumerate(curves):
        colour = f"C{i % 10}"
        if train:
            tokens, losses = [r[1] for r in train], [r[2] for r in train]
            half = _half_window(len(losses))
            # Stored curves keep every k-th step, so the window is told in steps, not in logged points.
            steps_per_point = (train[-1][0] - train[0][0]) / max(len(train) - 1, 1) or 1
            # One label names the faint raw lines of every curve: they all look alike but for colour.
            ax.plot(tokens, losses, color=colour, alpha=0.25, linewidth=0.8,
                    label="train, as logged (faint)" if i == 0 else "_nolegend_")
            ax.plot(tokens, _smooth(losses, half), color=colour, linewidth=1.8,
                    label=f"{label} (train, centred average of ~{(2 * half + 1) * steps_per_point:.0f} steps)")
        if val:
            ax.plot([r[1] for r in val], [r[2] for r in val], "o-", color=colour, markersize=4,
                    linewidth=1.0, label=f"{label} (validation)")
    if floor is not None:
        ax.axhline(floor, color=FLOOR_COLOUR, linestyle="--", linewidth=1.2, label=f"entropy floor {floor:.3f}")
    ax.set_xlabel("training tokens")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: human(x)))  # '200K', not '200000': panels are narrow
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.grid(alpha=0.3)


def loss_curve(runs_or_curves, floor: float | None = None, *, title: str | None = None,
               figsize: tuple[float, float] = (7.2, 4.4)) -> Figure:
    """Training loss (faint: as logged; thick: moving average) and validation loss (dots) in nats/token
    against tokens seen, from the first step: a fresh model starts near ln(vocabulary).

    When that start dwarfs the later gains, a second panel zooms on the rest of training. `floor` draws
    the entropy floor: the loss no model can beat. Accepts a Run, a list of Runs, or a mapping
    label -> Run or (train_curve, val_curve) of [[step, tokens, loss], ...].
    """
    curves = [(label, [r for r in train if math.isfinite(r[2])], [r for r in val if math.isfinite(r[2])])
              for label, train, val in _curves(runs_or_curves)]
    fig = Figure(figsize=figsize, layout="constrained")
    zoom = _zoom_limits(curves)
    axes = fig.subplots(1, 2, width_ratios=(3, 2)) if zoom else [fig.add_subplot()]
    for ax in axes:
        _draw_losses(ax, curves, floor)
    axes[0].set_ylabel("loss (nats/token)")
    if zoom:
        axes[0].set_title("whole run", fontsize=9)
        axes[1].set_ylim(*zoom)
        axes[1].set_title("zoom: after the first 20% of tokens", fontsize=9)
    if title:
        fig.suptitle(title)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:  # below the panels, where it can hide no point
        fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=8)
    return fig


def figure_png(fig: Figure, dpi: int = 90) -> bytes:
    """PNG bytes of `fig` (rendered with Agg; works without any pyplot backend)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})  # zlib level 1: a quarter of the save time, files a little larger
    return buffer.getvalue()


def figure_display_data(fig: Figure, dpi: int = 90) -> dict:
    """`fig` as a Jupyter display_data output (image/png, base64) for an ipywidgets Output's `outputs`."""
    png = base64.b64encode(figure_png(fig, dpi)).decode("ascii")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": png, "text/plain": "<loss curve>"}}


def skill_bars(report, *, title: str | None = None, figsize: tuple[float, float] = (10.0, 4.8)) -> Figure:
    """One bar per skill of a `cl.loss_by_skill` report: its floor (grey) and the model's excess above it,
    in nats per token of the corpus (so the bars add up to the loss); skills sorted by excess."""
    frame = report.frame.sort_values("excess")
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    y = range(len(frame))
    ax.barh(y, frame.floor, color="#cccccc", label="floor: what no model can predict")
    ax.barh(y, frame.excess, left=frame.floor, color="C3", label="excess: what the model has still to learn")
    ax.set_yticks(list(y), [f"{s} ({p})" for s, p in zip(frame.skill, frame.part)], fontsize=8)
    ax.set_xlabel("nats/token (the bars sum to the loss)")
    ax.set_title(title or f"loss {report.model:.3f} = floor {report.floor:.3f} + excess {report.excess:.3f}",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig
