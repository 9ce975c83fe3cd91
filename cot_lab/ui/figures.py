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

FLOOR_COLOUR = "#444444"


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


def _smooth(values: list[float], steps: int = 20) -> list[float]:
    """Exponential moving average with a window of about `steps`, debiased at the start (as in Adam)."""
    beta, avg, out = 1 - 1 / steps, 0.0, []
    for i, v in enumerate(values, 1):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta**i))
    return out


def loss_curve(runs_or_curves, floor: float | None = None, *, title: str | None = None,
               figsize: tuple[float, float] = (6.4, 3.8)) -> Figure:
    """Training loss (thin: raw; thick: smoothed) and validation loss (dots) in nats/token against tokens seen.

    `floor` draws the entropy floor: the loss no model can beat. Accepts a Run, a list of Runs,
    or a mapping label -> Run or (train_curve, val_curve) of [[step, tokens, loss], ...].
    """
    curves = _curves(runs_or_curves)
    fig = Figure(figsize=figsize, layout="constrained")
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    top = []
    for i, (label, train, val) in enumerate(curves):
        colour = colours[i % len(colours)]
        train = [row for row in train if math.isfinite(row[2])]
        if train:
            tokens, losses = [r[1] for r in train], [r[2] for r in train]
            ax.plot(tokens, losses, color=colour, alpha=0.25, linewidth=0.8)
            window = min(20, max(1, len(losses) // 10))  # a long window would lag far behind a short run
            ax.plot(tokens, _smooth(losses, window), color=colour, linewidth=1.8, label=f"{label} (train)")
            top.append(losses[min(len(losses) - 1, max(1, len(losses) // 20))])
        if val:
            ax.plot([r[1] for r in val], [r[2] for r in val], "o-", color=colour, markersize=4,
                    linewidth=1.0, label=f"{label} (validation)")
            top.append(max(r[2] for r in val))
    if floor is not None:
        ax.axhline(floor, color=FLOOR_COLOUR, linestyle="--", linewidth=1.2,
                   label=f"entropy floor {floor:.3f}")
    if top:  # the first few steps sit near ln(vocab); clip them so the interesting part fills the plot
        seen = [r[2] for _, train, val in curves for r in [*train, *val] if math.isfinite(r[2])]
        low = min(seen + ([floor] if floor is not None else []))  # a loss below the floor must stay visible
        high = max(top)
        pad = 0.08 * max(high - low, 0.05)
        ax.set_ylim(low - pad, high + pad)
    ax.set_xlabel("training tokens")
    ax.set_ylabel("loss (nats/token)")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper right")
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
