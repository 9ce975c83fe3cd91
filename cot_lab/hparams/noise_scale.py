"""The gradient noise scale: the batch size past which a bigger batch stops buying faster progress, measured.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", arXiv 1812.06162). With G the true
gradient and Sigma the covariance of one example's gradient, the simple noise scale

    B_simple = tr(Sigma) / |G|^2                                                        (their Eq. 2.8)

is the batch at which the noise in a batch's gradient is as large as the gradient itself; below it, doubling
the batch nearly halves the steps, above it the steps barely fall. Neither tr(Sigma) nor |G|^2 is known, but
the expected squared norm of a batch-B gradient is |G|^2 + tr(Sigma) / B, so two batch sizes give both
(their App. A.1, unbiased):

    |G|^2    ~ (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    tr(Sigma) ~ (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)

Here the big batch is the mean of `accumulate` small batches (their data-parallel trick: no extra forward
passes), |G_small|^2 the mean of the small batches' squared norms. Each estimate is noisy and can be negative;
both are smoothed by an exponential moving average before the ratio is taken, as the paper does.

For a language model an "example" is one sequence, so B_simple comes out in sequences; `b_simple_tokens` is it
times the sequence length, the unit in which batch sizes are quoted (tokens within a sequence are correlated,
so the token figure is a convention, not a second measurement).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from cot_lab.core import validate
from cot_lab.core.callbacks import Callback, TrainState

DEFAULT_EMA = 0.9  # weight of the past in the moving averages: about 10 measurements in memory


def two_batch_estimates(small_norm_sq: float, big_norm_sq: float, b_small: float, b_big: float) -> tuple[float, float]:
    """(|G|^2, tr(Sigma)) from the squared gradient norms at two batch sizes (McCandlish et al. 2018, App. A.1).

    small_norm_sq, big_norm_sq: |G_B|^2 of a mean gradient over b_small and b_big examples (b_small < b_big).
    Both results are unbiased and either can come out negative on one pair: average before dividing.
    """
    if not 0 < b_small < b_big:
        raise ValueError(f"b_small={b_small!r}, b_big={b_big!r}: need 0 < b_small < b_big (e.g. 4 and 32)")
    grad_sq = (b_big * big_norm_sq - b_small * small_norm_sq) / (b_big - b_small)
    trace = (small_norm_sq - big_norm_sq) / (1.0 / b_small - 1.0 / b_big)
    return grad_sq, trace


@dataclass(frozen=True)
class NoiseScale:
    """A B_simple measurement: the smoothed |G|^2 and tr(Sigma) and their ratio, B_simple (examples)."""

    b_simple: float          # examples (sequences for a language model); nan while an average is not yet positive
    grad_norm_sq: float      # |G|^2, smoothed
    trace_sigma: float       # tr(Sigma) of one example's gradient, smoothed
    b_small: int             # examples in a small batch
    b_big: int               # examples in a big batch (accumulate x b_small)
    measurements: int        # pairs of (small, big) norms averaged
    seq_len: int = 1         # tokens per example, for `b_simple_tokens`

    @property
    def b_simple_tokens(self) -> float:
        """B_simple in tokens: examples x tokens per example."""
        return self.b_simple * self.seq_len


@dataclass
class NoiseScaleTracker:
    """Averages of |G|^2 and tr(Sigma): exponential moving ones (weight `ema` on the past, bias-corrected as
    Adam's so early values are fair) for weights that move, or plain means (`ema=None`) for weights held still."""

    b_small: int
    b_big: int
    ema: float | None = DEFAULT_EMA
    seq_len: int = 1
    _grad_sq: float = field(default=0.0, repr=False)
    _trace: float = field(default=0.0, repr=False)
    count: int = 0

    def __post_init__(self):
        if self.ema is not None:
            self.ema = validate.fraction("ema", self.ema, hint="the weight of the past, in [0, 1) (0 keeps only the "
                                                                "last measurement), or None for a plain mean")
        two_batch_estimates(1.0, 1.0, self.b_small, self.b_big)  # checks the two sizes

    def update(self, small_norm_sq: float, big_norm_sq: float) -> NoiseScale:
        """Add one pair of squared norms; returns the estimate so far."""
        grad_sq, trace = two_batch_estimates(small_norm_sq, big_norm_sq, self.b_small, self.b_big)
        self.count += 1
        past = (1 - 1 / self.count) if self.ema is None else self.ema
        self._grad_sq = past * self._grad_sq + (1 - past) * grad_sq
        self._trace = past * self._trace + (1 - past) * trace
        return self.estimate

    @property
    def estimate(self) -> NoiseScale | None:
        """The current NoiseScale, or None before the first update."""
        if self.count == 0:
            return None
        correction = 1.0 if self.ema is None else 1 - self.ema ** self.count
        grad_sq, trace = self._grad_sq / correction, self._trace / correction
        b_simple = trace / grad_sq if grad_sq > 0 and trace >= 0 else math.nan  # unresolved noise: no ratio yet
        return NoiseScale(b_simple, grad_sq, trace, self.b_small, self.b_big, self.count, self.seq_len)


def _squared_norm(grads) -> float:
    return float(sum(g.double().pow(2).sum() for g in grads))


def _norm_pair(grad_fn, sample, b_small: int, accumulate: int) -> tuple[float, float]:
    """(mean |G_small|^2 over `accumulate` fresh small batches, |G_big|^2 of their mean gradient)."""
    small_sq, total = 0.0, None
    for _ in range(accumulate):
        grads = [g.detach() for g in grad_fn(sample(b_small))]
        small_sq += _squared_norm(grads) / accumulate
        total = grads if total is None else [t + g for t, g in zip(total, grads)]
    return small_sq, _squared_norm([t / accumulate for t in total])


def measure_noise_scale(grad_fn: Callable[[object], list[torch.Tensor]], sample: Callable[[int], object], *,
                        b_small: int, accumulate: int = 8, measurements: int = 16, ema: float | None = None,
                        seq_len: int = 1) -> NoiseScale:
    """B_simple of any model: `grad_fn(batch)` returns the gradient (tensors) of the mean loss over `batch`,
    `sample(n)` draws a fresh batch of n examples. Each measurement draws `accumulate` small batches of `b_small`;
    their mean is the big batch. Returns the average (`ema=None`: plain mean, right for weights held still)
    after `measurements` of them."""
    b_small = validate.integer("b_small", b_small, hint="examples per small batch, e.g. 4")
    accumulate = validate.integer("accumulate", accumulate, low=2, hint="small batches per big one, e.g. 8")
    measurements = validate.integer("measurements", measurements, hint="pairs of norms to average, e.g. 16")
    tracker = NoiseScaleTracker(b_small, b_small * accumulate, ema, seq_len)
    for _ in range(measurements):
        tracker.update(*_norm_pair(grad_fn, sample, b_small, accumulate))
    return tracker.estimate


def _language_model_gradients(model, device):
    """grad_fn for `measure_noise_scale`: the gradient of the mean next-token loss, left out of `.grad`."""
    from cot_lab.core.objective import next_token_loss

    params = [p for p in model.parameters() if p.requires_grad]

    def grad_fn(rows):
        loss = next_token_loss(model, rows.to(device))
        return torch.autograd.grad(loss, params)
    return grad_fn


def _row_sampler(corpus, seq_len: int, seed: int):
    """sample(n): the next n training rows [n, seq_len + 1] of `corpus` from a stream of its own seed."""
    stream = corpus.train_batches(1, seq_len, seed)
    return lambda n: torch.cat([next(stream) for _ in range(n)])


def gradient_noise_scale(model, corpus, *, batch_size: int = 4, accumulate: int = 8, measurements: int = 16,
                         ema: float | None = None, seq_len: int | None = None, seed: int = 1) -> NoiseScale:
    """B_simple (sequences; `.b_simple_tokens` in tokens) of a language model where its weights are now, on
    `corpus`'s training rows, from small batches of `batch_size` sequences and big ones of `accumulate` of them.

    The weights are not changed and `.grad` is left as it was (gradients are taken with `torch.autograd.grad`).
    seed: the row stream (another seed than the run's, so the measurement does not reuse its batches).
    """
    from cot_lab.core.config import config_of

    seq_len = config_of(model).seq_len if seq_len is None else validate.integer("seq_len", seq_len)
    device = next(model.parameters()).device
    was_training = model.training
    model.train()  # dropout-free models: train mode only matters for what the gradient sees, as in training
    try:
        return measure_noise_scale(_language_model_gradients(model, device),
                                   _row_sampler(corpus, seq_len, seed), b_small=batch_size, accumulate=accumulate,
                                   measurements=measurements, ema=ema, seq_len=seq_len)
    finally:
        model.train(was_training)


class NoiseScaleCallback(Callback):
    """A trainer hook: every `every` optimizer steps, B_simple of the live model, measured on fresh training rows.

    Each measurement pair costs `accumulate` extra forward and backward passes of `batch_size` sequences (the
    optimizer's own gradients are clipped and consumed inside the step, so they cannot be reused). The history
    is `self.history`, a list of (step, tokens, NoiseScale); `on_measure(step, tokens, noise_scale)` is called
    after each, for a live plot. One tracker runs over the whole run, so each value averages the recent past.
    """

    def __init__(self, corpus, *, every: int = 50, batch_size: int = 4, accumulate: int = 8, ema: float = DEFAULT_EMA,
                 seed: int = 1, on_measure=None):
        self.corpus, self.on_measure = corpus, on_measure
        self.every = validate.integer("every", every, hint="optimizer steps between measurements, e.g. 50")
        self.batch_size = validate.integer("batch_size", batch_size, hint="sequences per small batch, e.g. 4")
        self.accumulate = validate.integer("accumulate", accumulate, low=2, hint="small batches per big one, e.g. 8")
        self.ema, self.seed = ema, seed
        self.history: list[tuple[int, int, NoiseScale]] = []
        self.model = self._grad_fn = self._sample = self._tracker = None

    def on_start(self, model) -> None:
        from cot_lab.core.config import config_of

        seq_len = config_of(model).seq_len
        self.model, self.history = model, []
        self._grad_fn = _language_model_gradients(model, next(model.parameters()).device)
        self._sample = _row_sampler(self.corpus, seq_len, self.seed)
        self._tracker = NoiseScaleTracker(self.batch_size, self.batch_size * self.accumulate, self.ema, seq_len)

    def on_step(self, state: TrainState) -> None:
        if self.model is None or state.step % self.every:
            return
        estimate = self._tracker.update(*_norm_pair(self._grad_fn, self._sample, self.batch_size, self.accumulate))
        self.history.append((state.step, state.tokens, estimate))
        if self.on_measure is not None:
            self.on_measure(state.step, state.tokens, estimate)

    def frame(self):
        """The history as a pandas DataFrame: step, tokens, b_simple (sequences), b_simple_tokens, |G|^2, tr(Sigma)."""
        import pandas as pd

        return pd.DataFrame([dict(step=s, tokens=t, b_simple=e.b_simple, b_simple_tokens=e.b_simple_tokens,
                                  grad_norm_sq=e.grad_norm_sq, trace_sigma=e.trace_sigma) for s, t, e in self.history])
