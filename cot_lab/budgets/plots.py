"""The three FLOP accountings side by side: where "C = 6N per token" is off, and by how much.

Per token of training, relative to 6N (N = all parameters, embeddings included):
  "kaplan"      6 N_nonembed + 6 n_layer T d_attn    (Kaplan et al. 2020, Table 1, arXiv 2001.08361)
  "chinchilla"  Hoffmann et al. 2022 App. F (arXiv 2203.15556), as executed: attention scores and
                weighted values add 12 n_layer T d_attn, and the input embedding is a lookup (0 FLOPs)
  paper         the same with App. F's 2 V d embedding term counted as a matmul, as the paper does
So 6N is off for long contexts T (attention grows with T while N does not) and for small models,
whose embedding matrix is a large share of N.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.figure import Figure

from cot_lab.core import validate
from cot_lab.core.accounting import count_params, flops_breakdown, flops_per_token
from cot_lab.core.shapes import preset
from cot_lab.ui.figures import log_scale

CURVES = ("6n", "kaplan", "chinchilla", "chinchilla (paper convention)")
STYLE = {"6n": dict(color="#444444", ls="-"), "kaplan": dict(color="#1f77b4", ls="-"),
         "chinchilla": dict(color="#d62728", ls="-"), "chinchilla (paper convention)": dict(color="#d62728", ls=":")}


def default_sizes(lo: float = 1e4, hi: float = 1e9, per_decade: int = 4) -> list[float]:
    """Log-spaced target model sizes (parameters) from `lo` to `hi`."""
    steps = round(math.log10(hi / lo) * per_decade)
    return [lo * (hi / lo) ** (i / steps) for i in range(steps + 1)]


def accounting_ratios(sizes: Sequence[float] | None = None, seq_len: int = 128,
                      vocab_size: int = 512) -> dict[str, list[float]]:
    """Training FLOPs per token under each accounting divided by 6N, for `preset` models near `sizes`.

    Returns {"n_params": exact totals (parameters), "6n", "kaplan", "chinchilla",
    "chinchilla (paper convention)": ratios (dimensionless)}, one entry per size.
    """
    seq_len = validate.integer("seq_len", seq_len, hint="tokens of context, e.g. 128")
    sizes = default_sizes() if sizes is None else list(sizes)
    if not sizes:
        raise ValueError("sizes=[] is empty; give model sizes in parameters, e.g. [1e5, 1e6, 1e7]")
    out: dict[str, list[float]] = {"n_params": [], **{c: [] for c in CURVES}}
    for n in sizes:
        cfg = preset(n, vocab_size=vocab_size, seq_len=seq_len)
        six_n = flops_per_token(cfg, "6n")
        # App. F's input-embedding matmul, forward, times 3 for forward + backward as every other term.
        paper_embedding = 3 * flops_breakdown(cfg)["embedding (paper convention)"]
        out["n_params"].append(count_params(cfg).total)
        for method in ("6n", "kaplan", "chinchilla"):
            out[method].append(flops_per_token(cfg, method) / six_n)
        out["chinchilla (paper convention)"].append((flops_per_token(cfg, "chinchilla") + paper_embedding) / six_n)
    return out


def accounting_figure(sizes: Sequence[float] | None = None, seq_lens: Sequence[int] = (128, 8192),
                      vocab_size: int = 512, figsize: tuple[float, float] = (10.0, 3.8)) -> Figure:
    """One panel per context length: each accounting's training FLOPs per token / 6N against model size (parameters)."""
    if not seq_lens:
        raise ValueError("seq_lens=() is empty; give context lengths in tokens, e.g. (128, 8192)")
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(1, len(seq_lens), sharey=True, squeeze=False)[0]
    for ax, seq_len in zip(axes, seq_lens):
        ratios = accounting_ratios(sizes, seq_len, vocab_size)
        for curve in CURVES:
            ax.plot(ratios["n_params"], ratios[curve], marker="." if curve != "6n" else None, label=curve,
                    **STYLE[curve])
        log_scale(ax, "xy")
        ax.set_title(f"context {seq_len:,} tokens, vocabulary {vocab_size:,}")
        ax.set_xlabel("model size N (parameters)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("training FLOPs per token / 6N")
    # Below the panels: inside, some sizes put the curves' points under it.
    fig.legend(*axes[-1].get_legend_handles_labels(), loc="outside lower center", ncols=len(CURVES), fontsize="small")
    return fig
