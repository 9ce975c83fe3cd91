"""Model shapes: `preset` (one well-shaped model near a parameter count) and `size_ladder` (a sweep's sizes).

Both fix a moderate aspect ratio d_model / n_layer near 32: Kaplan et al. 2020 (arXiv 2001.08361,
Fig. 5) find the loss nearly flat in aspect ratio over a wide range, so the shape is not a variable.
"""
from __future__ import annotations

import functools
import math

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


@functools.lru_cache(maxsize=8)
def size_ladder(seq_len: int = 128, vocab_size: int = 512, rungs: int = 12) -> tuple[ModelConfig, ...]:
    """Model shapes from the smallest (d_model 8, 1 layer, one head) upward, each ~2x (at least 1.98x) the last.

    Width and depth never shrink from one rung to the next, so a sweep's sizes differ in scale, not in
    kind; among shapes that qualify, the one nearest 2x wins, with a small pull toward d_model/n_layer = 32
    (Kaplan et al. 2020 Fig. 5: loss is nearly flat in aspect ratio). Head size 8 at d_model 8, 16 below 128,
    else 32. The 5K-parameter d_model-8 model is mostly its embedding table; it is there because at 1e11
    FLOPs the optimum sits near 20K parameters and a curve needs a point on each side of its minimum.
    """
    shapes = []
    for d_model in (8, *range(16, 2049, 16)):
        head_dim = 8 if d_model == 8 else 16 if d_model < 128 else 32
        if d_model % head_dim:
            continue
        for n_layer in range(1, 33):
            cfg = ModelConfig(d_model=d_model, n_layer=n_layer, n_head=d_model // head_dim, vocab_size=vocab_size,
                              seq_len=seq_len)
            shapes.append((count_params(cfg).total, cfg))
    ladder = [min(shapes, key=lambda s: s[0])]
    while len(ladder) < rungs:
        n_prev, prev = ladder[-1]
        bigger = [s for s in shapes if s[0] >= 1.98 * n_prev and s[1].d_model >= prev.d_model
                  and s[1].n_layer >= prev.n_layer]
        if not bigger:
            break
        ladder.append(min(bigger, key=lambda s: abs(math.log(s[0] / (2 * n_prev)))
                          + 0.15 * abs(math.log(s[1].d_model / s[1].n_layer / 32))))
    return tuple(cfg for _, cfg in ladder)


def sizes_around(n_center: float, count: int, *, seq_len: int = 128, vocab_size: int = 512) -> list[ModelConfig]:
    """`count` consecutive ladder shapes centred on the rung nearest `n_center` parameters (shifted up at the bottom)."""
    ladder = size_ladder(seq_len, vocab_size, max(12, count + 4))
    nearest = min(range(len(ladder)), key=lambda i: abs(math.log(count_params(ladder[i]).total / n_center)))
    first = min(max(0, nearest - count // 2), len(ladder) - count)
    return list(ladder[first:first + count])
