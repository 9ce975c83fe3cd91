"""Model shapes: `preset` (one well-shaped model near a parameter count) and `size_ladder` (a sweep's sizes).

Both fix a moderate aspect ratio d_model / n_layer near 32: Kaplan et al. 2020 (arXiv 2001.08361,
Fig. 5) find the loss nearly flat in aspect ratio over a wide range, so the shape is not a variable.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from cot_lab.core import validate
from cot_lab.core.accounting import count_params
from cot_lab.core.config import ModelConfig


def preset(n_params: float, *, vocab_size: int = 512, seq_len: int = 128, arch: str = "dense", **overrides) -> ModelConfig:
    """A well-shaped config whose total parameter count is near `n_params` (parameters).

    Shape rule (why: Kaplan et al. 2020 Fig. 5 find loss nearly flat in aspect ratio over a wide
    range, so we fix a moderate one): head_dim 16 below d_model 128 else 32, and
    d_model / n_layer close to 32, between 16 and 64; among such shapes the one closest
    to the target in log-parameters wins.
    """
    n_params = validate.number("n_params", n_params, hint="a number of parameters, e.g. 1e6")
    best, best_score = None, math.inf
    for n_layer in range(1, 33):
        for d_model in range(16, 2049, 16):
            aspect = d_model / n_layer
            if not 8 <= aspect <= 128:
                continue
            head_dim = 16 if d_model < 128 else 32
            if d_model % head_dim:
                continue
            cfg = ModelConfig(
                d_model=d_model, n_layer=n_layer, n_head=d_model // head_dim, vocab_size=vocab_size,
                seq_len=seq_len, arch=arch, **overrides,
            )
            total = count_params(cfg).total
            score = abs(math.log(total / n_params)) + 0.1 * abs(math.log(aspect / 32))
            if score < best_score:
                best, best_score = cfg, score
    return best


HEAD_DIM = 8        # every rung's head size: a fixed head size keeps attention alike along the ladder
MIN_LAYERS = 2      # one layer cannot form an induction head (copying a name needs two attention layers)
ASPECT = 8          # d_model / n_layer of every rung


@functools.lru_cache(maxsize=8)
def size_ladder(seq_len: int = 128, vocab_size: int = 512, rungs: int = 24) -> tuple[ModelConfig, ...]:
    """A like-for-like ladder of model shapes, smallest first: only the size changes from rung to rung.

    Rung i has n_layer = i + 2, d_model = 8 n_layer and heads of size 8, so the aspect ratio d_model / n_layer
    is 8 on every rung and width and depth grow together: 14.9K, 33K, 67K, 120K, 191K, 296K, 435K, ...
    parameters at vocabulary 512 (neighbours 2.2x apart at the bottom, 1.3x at 1M). Kaplan et al. 2020
    (arXiv 2001.08361, Fig. 5) find loss nearly flat in aspect ratio over a wide range, so one fixed aspect
    keeps shape out of the size axis; two layers at least, because one cannot form an induction head.
    At small sizes the embedding table is much of the model (55% of the 14.9K rung, 10% at 300K), which
    is why the fits report non-embedding parameters too (Pearce & Song 2024, arXiv 2406.12907).
    """
    return tuple(ModelConfig(d_model=ASPECT * n_layer, n_layer=n_layer, n_head=ASPECT * n_layer // HEAD_DIM,
                             vocab_size=vocab_size, seq_len=seq_len)
                 for n_layer in range(MIN_LAYERS, MIN_LAYERS + rungs))


def sizes_around(n_center: float, count: int, *, seq_len: int = 128, vocab_size: int = 512) -> list[ModelConfig]:
    """`count` consecutive ladder shapes centred on the rung nearest `n_center` parameters (shifted up at the bottom)."""
    ladder = size_ladder(seq_len, vocab_size)
    nearest = min(range(len(ladder)), key=lambda i: abs(math.log(count_params(ladder[i]).total / n_center)))
    first = min(max(0, nearest - count // 2), len(ladder) - count)
    return list(ladder[first:first + count])


def flops_per_token_through(n_params, flops_per_token) -> "callable":
    """A function N -> training FLOPs per token through the points (n_params[i], flops_per_token[i]).

    Exact at every point; between points the FLOPs per token per parameter are interpolated linearly in
    log N, and held at the end points' values beyond them.
    """
    order = np.argsort(np.asarray(n_params, dtype=float))
    n = np.asarray(n_params, dtype=float)[order]
    log_n, log_per_param = np.log(n), np.log(np.asarray(flops_per_token, dtype=float)[order] / n)

    def flops_per_token_of(n_params):
        x = np.asarray(n_params, dtype=float)
        out = x * np.exp(np.interp(np.log(x), log_n, log_per_param))
        return float(out) if out.ndim == 0 else out
    return flops_per_token_of


@functools.lru_cache(maxsize=8)
def ladder_flops_per_token(seq_len: int = 128, vocab_size: int = 512):
    """The trainer's training FLOPs per token as a function of N (total parameters) along `size_ladder`.

    Exact at every rung (`flops_per_token(cfg)`, H22 App. F), interpolated between them
    (`flops_per_token_through`). This is the count a law's `optimal(C, flops_per_token=...)` needs to turn C
    into (N, D) as the trainer spends it.
    """
    from cot_lab.core.accounting import flops_per_token

    seq_len = validate.integer("seq_len", seq_len, hint="tokens of context, e.g. 128")
    vocab_size = validate.integer("vocab_size", vocab_size, hint="e.g. 512")
    ladder = size_ladder(seq_len, vocab_size)
    return flops_per_token_through([count_params(c).total for c in ladder], [flops_per_token(c) for c in ladder])
