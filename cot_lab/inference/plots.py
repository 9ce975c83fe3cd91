"""Notebook 04's figures: lifetime cost and the inference-aware model against expected requests, and serving speed.

Each function returns a matplotlib Figure (not pyplot). The lifetime figures solve Sardana et al. 2024's problem
(arXiv 2401.00448) once per request count through `readout.lifetime_choice`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from cot_lab.budgets.gpus import gpu as lookup_gpu
from cot_lab.core import validate
from cot_lab.core.law import ScalingLaw
from cot_lab.inference.costs import TOKENS_PER_REQUEST
from cot_lab.inference.readout import lifetime_choice, serving_flops_share, tokens_pair
from cot_lab.ui.checks import percent
from cot_lab.ui.figures import log_scale

if TYPE_CHECKING:
    from cot_lab.inference.serving import ServingReport

UNITS = ("usd", "flops")
CHINCHILLA_TOKENS_PER_PARAM = 20.0  # Hoffmann et al. 2022 (arXiv 2203.15556), Table 3: ~20 tokens per parameter
CHINCHILLA_STYLE = dict(color="#444444", ls="--", lw=1.6)
AWARE_STYLE = dict(color="C0", ls="-", lw=2.0)


@dataclass(frozen=True)
class RealModel:
    """A released model trained far past Chinchilla's 20 tokens per parameter: parameters and training tokens."""
    name: str
    n_params: float
    train_tokens: float
    source: str

    @property
    def tokens_per_param(self) -> float:
        """Training tokens per parameter."""
        return self.train_tokens / self.n_params


REAL_MODELS = (
    # Meta, "The Llama 3 Herd of Models" (arXiv 2407.21783), Sec. 1 and 3: pre-trained on about 15T tokens.
    RealModel("Llama 3 8B", 8e9, 15e12, "Meta 2024, arXiv 2407.21783, Sec. 1 and 3"),
    # Allal et al. 2025, "SmolLM2: When Smol Goes Big" (arXiv 2502.02737): 1.7B parameters on ~11T tokens.
    RealModel("SmolLM2-1.7B", 1.7e9, 11e12, "Allal et al. 2025, arXiv 2502.02737"),
)


def _requests(requests) -> np.ndarray:
    r = np.sort(validate.positive_array("requests", requests, "lifetime requests, e.g. np.logspace(3, 12, 40)").ravel())
    if len(r) < 2:
        raise ValueError(f"requests={requests!r} needs at least two request counts, e.g. np.logspace(3, 12, 40)")
    return r


def _sweep(law, loss, requests, tokens_per_request, gpu, usd_per_hour, objective, flops_per_token):
    """One `LifetimeCost` per request count."""
    if objective == "flops" and usd_per_hour is None and lookup_gpu(gpu).usd_per_hour is None:
        usd_per_hour = 1.0  # any positive price: nothing drawn in FLOPs depends on it
    return [lifetime_choice(law, loss=loss, requests=float(r), tokens_per_request=tokens_per_request, gpu=gpu,
                            usd_per_hour=usd_per_hour, objective=objective, flops_per_token=flops_per_token)
            for r in requests]


def _requests_axis(ax) -> None:
    log_scale(ax, "x")
    ax.set_xlabel("expected lifetime requests")
    ax.grid(True, which="major", alpha=0.3)


def lifetime_cost_vs_requests(law: ScalingLaw, *, loss: float, requests=np.logspace(3, 12, 40),
                              tokens_per_request=TOKENS_PER_REQUEST, gpu: str = "H100-SXM",
                              usd_per_hour: float | None = None, flops_per_token=None, unit: str = "usd",
                              title: str | None = None) -> Figure:
    """Lifetime USD (unit="usd") or FLOPs ("flops") against expected requests, Chinchilla-optimal vs inference-aware.

    The inference-aware model minimises the plotted unit (`readout.lifetime_choice`); the lower panel is the share
    of that unit spent serving. Both models reach `loss` nats/token under `law` and serve the same requests.
    """
    validate.one_of("unit", unit, UNITS)
    r = _requests(requests)
    t_in, t_out = tokens_pair(tokens_per_request)
    costs = _sweep(law, loss, r, (t_in, t_out), gpu, usd_per_hour, unit, flops_per_token)

    def total(m):
        return m.lifetime_usd if unit == "usd" else m.lifetime_flops

    def share(m):
        return 100 * (m.serving_share if unit == "usd" else serving_flops_share(m))

    fig = Figure(figsize=(7.5, 6.4), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    what = "USD" if unit == "usd" else "FLOPs"
    for attr, style, label in (("chinchilla", CHINCHILLA_STYLE, "Chinchilla-optimal model (fewest training FLOPs)"),
                               ("optimum", AWARE_STYLE, f"inference-aware model (fewest lifetime {what})")):
        models = [getattr(c, attr) for c in costs]
        top.plot(r, [total(m) for m in models], label=label, **style)
        bottom.plot(r, [share(m) for m in models], label=label, **style)
    log_scale(top, "y")
    top.set_ylabel(f"lifetime {what} (training + serving)")
    top.grid(True, which="major", alpha=0.3)
    bottom.set_ylim(0, 105)
    bottom.set_ylabel(f"% of lifetime {what}\nspent serving")
    _requests_axis(bottom)
    on = f"; {costs[0].gpu}" if unit == "usd" else ""  # FLOPs do not depend on the GPU
    top.set_title(title or f"target loss {costs[0].loss:.4g} nats/token; {t_in:,.0f} prompt + {t_out:,.0f} output "
                           f"tokens per request{on}", fontsize=10)
    fig.legend(*top.get_legend_handles_labels(), loc="outside lower center", ncols=1, fontsize=8)
    return fig


def _crossing(requests: np.ndarray, tokens_per_param: np.ndarray, target: float) -> float | None:
    """Request count (interpolated in logs) at which the curve reaches `target` tokens/param; None if it does not."""
    rising = np.maximum.accumulate(np.log(tokens_per_param))  # the curve rises with requests; guard float noise
    if not rising[0] <= np.log(target) <= rising[-1]:
        return None
    return float(np.exp(np.interp(np.log(target), rising, np.log(requests))))


def optimal_size_vs_requests(law: ScalingLaw, *, loss: float, requests=np.logspace(3, 12, 40),
                             tokens_per_request=TOKENS_PER_REQUEST, flops_per_token=None, objective: str = "flops",
                             gpu: str = "H100-SXM", usd_per_hour: float | None = None, real_models=REAL_MODELS,
                             title: str | None = None) -> Figure:
    """The inference-aware model against expected requests: its size / the Chinchilla size (left) and its training
    tokens per parameter (right, log), with Chinchilla's 20 tokens/param and `real_models` placed on the curve
    at the request count where this law would make their over-training optimal."""
    r = _requests(requests)
    costs = _sweep(law, loss, r, tokens_per_request, gpu, usd_per_hour, objective, flops_per_token)
    tpp = np.array([c.optimum.train_tokens / c.optimum.n_params for c in costs])
    fig = Figure(figsize=(10.0, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(r, [c.n_ratio for c in costs], label="inference-aware model", **AWARE_STYLE)
    left.axhline(1.0, label="Chinchilla-optimal size (ratio 1)", **CHINCHILLA_STYLE)
    left.set_ylim(0, 1.1)
    left.set_ylabel("parameters / Chinchilla-optimal parameters")
    left.set_title("model size", fontsize=10)
    _requests_axis(left)
    right.plot(r, tpp, label="inference-aware model", **AWARE_STYLE)
    right.axhline(CHINCHILLA_TOKENS_PER_PARAM, label="Chinchilla's rule: 20 tokens per parameter (Hoffmann et al. 2022)",
                  color="#444444", ls=":", lw=1.4)
    shown = [CHINCHILLA_TOKENS_PER_PARAM, *tpp]
    for i, m in enumerate(real_models):
        at = _crossing(r, tpp, m.tokens_per_param)
        what = f"{m.name}: {m.train_tokens / 1e12:g}T tokens, {m.tokens_per_param:,.0f} tokens/param"
        if at is None:  # the curve never gets there in this range: show the level, and say so
            right.axhline(m.tokens_per_param, color=f"C{i + 1}", ls="-.", lw=1.2,
                          label=f"{what} (not reached by {r[-1]:.0e} requests)")
        else:
            right.plot([at], [m.tokens_per_param], marker="o", ls="none", color=f"C{i + 1}", markersize=8,
                       label=f"{what}: optimal at ~{at:.1e} requests")
        shown.append(m.tokens_per_param)
    log_scale(right, "y")
    right.set_ylim(min(shown) / 2, max(shown) * 2)
    right.set_ylabel("training tokens per parameter")
    right.set_title("how far past Chinchilla to train", fontsize=10)
    _requests_axis(right)
    t_in, t_out = tokens_pair(tokens_per_request)
    what = "lifetime FLOPs" if objective == "flops" else "lifetime USD"
    fig.suptitle(title or f"the model with the fewest {what} at target loss {costs[0].loss:.4g} nats/token "
                          f"({t_in:,.0f} + {t_out:,.0f} tokens per request)", fontsize=10)
    legend = {}
    for ax in (left, right):  # one entry per label: the inference-aware curve is in both panels
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="outside lower center", ncols=2, fontsize=8)
    return fig


def serving_speed(reports: dict[str, "ServingReport"], *, title: str | None = None) -> Figure:
    """Measured decode tokens/s (all sequences) per model and batch size, against the memory-bandwidth ceiling.

    Bars are the measurements (`cl.measure_serving`), black ticks the ceiling each one could reach (bandwidth /
    bytes read per step, Pope et al. 2022, arXiv 2211.05102); the percentage over each is the share reached.
    """
    # duck-typed, so that drawing needs no torch import: a ServingReport has batches and a device name
    if not isinstance(reports, dict) or not reports or not all(hasattr(v, "batches") and hasattr(v, "device_name")
                                                                for v in reports.values()):
        raise ValueError(f"reports={reports!r:.80} must be a non-empty dict name -> ServingReport, e.g. "
                         "{'tiny': cl.measure_serving(model)}")
    sizes = sorted({b.batch_size for rep in reports.values() for b in rep.batches})
    n_bars = len(sizes) * len(reports)
    fig = Figure(figsize=(max(7.0, 2.0 + 0.75 * n_bars), 4.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(reports)
    ticks_x, ticks_y, low, high = [], [], np.inf, 0.0
    for i, (name, rep) in enumerate(reports.items()):
        rows = {b.batch_size: b for b in rep.batches}
        present = [(k + (i - (len(reports) - 1) / 2) * width, rows[s]) for k, s in enumerate(sizes) if s in rows]
        xs = [x for x, _ in present]
        measured = [b.decode_tokens_per_s for _, b in present]
        ceiling = [b.ceiling_tokens_per_s for _, b in present]
        ax.bar(xs, measured, width * 0.9, color=f"C{i}", label=f"{name}: measured decode ({rep.params:,} params)")
        for x, b in present:  # above the higher of bar and tick, so it overprints neither
            ax.text(x, max(b.decode_tokens_per_s, b.ceiling_tokens_per_s) * 1.25, percent(b.fraction_of_ceiling),
                    ha="center", va="bottom", fontsize=8)
        ticks_x += xs
        ticks_y += ceiling
        low, high = min(low, *measured), max(high, *measured, *ceiling)
    ax.hlines(ticks_y, [x - 0.45 * width for x in ticks_x], [x + 0.45 * width for x in ticks_x], color="black",
              lw=2.0, label="memory-bandwidth ceiling (weights + KV cache read once per step)")
    log_scale(ax, "y")
    ax.set_ylim(low / 3, high * 6)  # room above the highest tick for its percentage
    ax.set_xticks(range(len(sizes)), [f"batch {s}" for s in sizes])
    ax.set_ylabel("decode tokens/s (all sequences)")
    ax.grid(True, axis="y", which="major", alpha=0.3)
    devices = sorted({rep.device_name for rep in reports.values()})
    ax.set_title(title or f"decode speed on {', '.join(devices)}: % = share of the bandwidth ceiling reached",
                 fontsize=10)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=1, fontsize=8)
    return fig
