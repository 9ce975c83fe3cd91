"""Extractable memorisation: does greedy decoding from a document's prefix reproduce the document?

Carlini et al. 2022 ("Quantifying Memorization Across Neural Language Models", arXiv 2202.07646, Def. 3.1
and Sec. 4): a training sequence is *extractably memorised* when, prompted with its first `prefix` tokens,
the model's greedy (argmax) continuation is exactly its next `suffix` tokens. Over many sequences the
fraction memorised grows log-linearly with the number of times a sequence was duplicated in the training
data (their Fig. 1b), and also with model size and with the prompt length.

Here, for token rows [n, >= prefix + suffix] (the first prefix + suffix tokens of each row are used):
    greedy_continuation      the model's greedy tokens after each prefix, int64 [n, suffix]
    continuation_matches     per row: how many leading suffix tokens greedy decoding reproduces before its
                             first wrong token (0..suffix), and whether it reproduces them all (exact)
    exact_match_rate         the fraction of rows reproduced exactly: Carlini's measure, all or nothing
    leading_match_fraction   the mean over rows of (leading tokens matched) / suffix: a softer measure that
                             still counts only what greedy decoding extracts before it first goes wrong
                             (token accuracy after a miss is not used: the model then continues its own
                             wrong text, so later agreement is not extraction)
    memorisation_curve       the log-linear fit rate = a + b log10(copies) over groups planted c >= 1 times
                             (`cl.contaminate`); rows never seen (0 copies) are its baseline, the unseen rate

On a language of high entropy, such as synthetic-v3 (~3 nats/token), an unseen row is essentially never
reproduced exactly: guessing 16 tokens in a row is hopeless, so any exact match is memorisation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.evaluation.inputs import model_of, token_rows

DEFAULT_PREFIX = 32      # tokens of prompt (Carlini et al. vary it 50..500 on GPT-Neo; our rows are short)
DEFAULT_SUFFIX = 16      # tokens that must be reproduced (Carlini et al. use 50)
DEFAULT_BATCH_SIZE = 64  # rows decoded at once


def greedy_continuation(model_or_run, prefixes, suffix: int, *, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
    """The model's greedy continuation of each prefix: int64 [n, suffix] tokens (on the CPU) for prefixes [n, p].

    Each step runs the model on the prefix and the tokens chosen so far and appends the argmax of the logits
    at the last position (ties: the lowest id, torch's argmax). Eval mode, no gradients, on the model's
    device. The last step reads p + suffix - 1 positions, which must fit the model's context
    (max_position_embeddings); a ValueError says which prefix and suffix fit otherwise.
    """
    model = model_of(model_or_run)
    suffix = validate.integer("suffix", suffix, hint="tokens to generate, e.g. 16")
    batch_size = validate.integer("batch_size", batch_size, hint=f"rows decoded at once, e.g. {DEFAULT_BATCH_SIZE}")
    prefixes = _prefixes(prefixes, model)
    _check_context(model, prefixes.shape[1], suffix)
    return _greedy(model, prefixes, suffix, batch_size)


@dataclass(frozen=True)
class Continuations:
    """Greedy continuations of n rows against their true suffixes (see continuation_matches)."""
    prefix: int                # tokens of prompt
    suffix: int                # tokens to reproduce
    generated: torch.Tensor    # int64 [n, suffix]: the greedy tokens
    targets: torch.Tensor      # int64 [n, suffix]: the rows' true next tokens
    matched: np.ndarray        # int64 [n]: leading suffix tokens reproduced before the first wrong one (0..suffix)

    @property
    def n_rows(self) -> int:
        return int(self.matched.shape[0])

    @property
    def exact(self) -> np.ndarray:
        """bool [n]: the whole suffix reproduced (Carlini et al.'s extractable memorisation)."""
        return self.matched == self.suffix

    @property
    def exact_match_rate(self) -> float:
        """The fraction of rows reproduced exactly, in [0, 1]."""
        return float(self.exact.mean())

    @property
    def leading_fraction(self) -> np.ndarray:
        """float64 [n]: each row's leading tokens matched as a fraction of the suffix, in [0, 1]."""
        return self.matched / float(self.suffix)

    @property
    def leading_match_fraction(self) -> float:
        """The mean over rows of leading_fraction: the share of suffix tokens extracted before the first miss."""
        return float(self.leading_fraction.mean())

    def summary(self) -> str:
        return (f"{self.exact.sum()} of {self.n_rows} rows reproduced exactly ({self.exact_match_rate:.1%}) from "
                f"{self.prefix}-token prompts over {self.suffix} tokens; on average {self.leading_match_fraction:.1%} "
                f"of the suffix came out right before the first wrong token")


def continuation_matches(model_or_run, rows, prefix: int = DEFAULT_PREFIX, suffix: int = DEFAULT_SUFFIX, *,
                         batch_size: int = DEFAULT_BATCH_SIZE) -> Continuations:
    """Greedy-decode `suffix` tokens after the first `prefix` tokens of each row [n, >= prefix + suffix] and
    compare them with the row's next `suffix` tokens; a Continuations (matched, exact, the rates)."""
    model, rows, prefix, suffix, batch_size = _arguments(model_or_run, rows, prefix, suffix, batch_size)
    generated = _greedy(model, rows[:, :prefix], suffix, batch_size)
    targets = rows[:, prefix:prefix + suffix]
    wrong = (generated != targets).numpy()
    # the index of the first wrong token, or suffix where there is none
    matched = np.where(wrong.any(axis=1), wrong.argmax(axis=1), suffix).astype(np.int64)
    return Continuations(prefix=prefix, suffix=suffix, generated=generated, targets=targets, matched=matched)


def exact_match_rate(model_or_run, rows, prefix: int = DEFAULT_PREFIX, suffix: int = DEFAULT_SUFFIX, *,
                     batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """The fraction of rows (in [0, 1]) whose next `suffix` tokens greedy decoding from their first `prefix`
    tokens reproduces exactly: Carlini et al.'s extractable memorisation rate."""
    return continuation_matches(model_or_run, rows, prefix, suffix, batch_size=batch_size).exact_match_rate


def leading_match_fraction(model_or_run, rows, prefix: int = DEFAULT_PREFIX, suffix: int = DEFAULT_SUFFIX, *,
                           batch_size: int = DEFAULT_BATCH_SIZE) -> float:
    """The mean over rows of the fraction (in [0, 1]) of the suffix greedy decoding reproduces before its first
    wrong token: less all-or-nothing than exact_match_rate (1.0 exactly when every row is reproduced)."""
    return continuation_matches(model_or_run, rows, prefix, suffix, batch_size=batch_size).leading_match_fraction


@dataclass(frozen=True)
class MemorisationCurve:
    """The least-squares fit rate = intercept + slope log10(copies) over groups of rows planted c >= 1 times.

    intercept is the fitted rate at one copy, slope the change of the rate per tenfold copies (a fraction per
    decade). Their standard errors are binomial: group i's rate, of n_i rows, has variance p(1 - p) / n_i with
    p = (k_i + 1) / (n_i + 2) for k_i = rate_i n_i rows memorised (Laplace's rule, so that a group at 0 or 1
    still carries uncertainty), propagated through the (unweighted) least-squares estimates. They cover the
    sampling of rows only, not the training seed.
    """
    copies: np.ndarray         # float64 [g] >= 1, the copies of each group
    rates: np.ndarray          # float64 [g] in [0, 1], each group's memorised fraction
    n_rows: np.ndarray         # int64 [g], each group's rows
    intercept: float           # fraction memorised at 1 copy (fitted)
    slope: float               # fraction per decade of copies
    intercept_se: float
    slope_se: float
    unseen_rate: float | None  # the fraction memorised of rows never seen (0 copies), the baseline; None if not given
    unseen_rows: int | None

    method = "binomial"  # how the standard errors were found (see the docstring)

    def rate(self, copies) -> np.ndarray | float:
        """The fitted rate at `copies` (>= 1; a number or an array), clipped to [0, 1]: a fraction can go no
        further, though a straight line would. For 0 copies use unseen_rate, the measured baseline."""
        c = _copies("copies", copies)
        out = np.clip(self.intercept + self.slope * np.log10(c), 0.0, 1.0)
        return float(out) if np.ndim(copies) == 0 else out

    def frame(self):
        """A pandas DataFrame, one row per group (index: copies): n_rows, rate, its binomial se, the fitted rate."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        return pd.DataFrame({"n_rows": self.n_rows, "rate": self.rates, "se": _binomial_se(self.rates, self.n_rows),
                             "fitted": self.rate(self.copies)}, index=pd.Index(self.copies, name="copies"))

    def summary(self) -> str:
        said = (f"memorised fraction {self.intercept:.3f} at 1 copy, rising {self.slope:+.3f} +- {self.slope_se:.3f} "
                f"per tenfold copies ({len(self.copies)} groups, {int(self.n_rows.sum())} rows)")
        if self.unseen_rate is not None:
            said += f"; unseen rows: {self.unseen_rate:.3f} of {self.unseen_rows}"
        return said


def memorisation_curve(copies, rates, n_rows, *, unseen_rate: float | None = None,
                       unseen_rows: int | None = None) -> MemorisationCurve:
    """Fit rate = a + b log10(copies) by least squares (Carlini et al.'s log-linear form) to groups of rows
    planted `copies` times (each >= 1; at least two distinct values) with memorised fractions `rates` (e.g.
    exact_match_rate of each group) over `n_rows` rows each (one integer, or one per group).

    Rows never seen are not a point of the fit (log10 0 is -inf): pass their rate as unseen_rate (and their
    count as unseen_rows), reported as the baseline.
    """
    c = _copies("copies", copies, fit=True)
    r = np.asarray(rates, dtype=np.float64) if _numeric(rates) else None
    if r is None or r.ndim != 1 or not np.all(np.isfinite(r)) or np.any((r < 0) | (r > 1)):
        raise ValueError(f"rates must be a 1-D array of fractions in [0, 1], one per group of copies (e.g. "
                         f"exact_match_rate of each group); got {rates!r}")
    if r.shape != c.shape:
        raise ValueError(f"rates has {r.size} values but copies has {c.size}: pass one rate per group of copies")
    n = _n_rows(n_rows, c.size)
    if np.unique(c).size < 2:
        raise ValueError(f"copies={c.tolist()} has one distinct value; a slope needs groups planted at two or more "
                         "numbers of copies, e.g. copies=[1, 10, 100]")
    if unseen_rate is not None:
        unseen_rate = validate.number("unseen_rate", unseen_rate, low=0.0, low_open=False, high=1.0,
                                      hint="the fraction memorised of rows never seen, e.g. 0.0")
    if unseen_rows is not None:
        unseen_rows = validate.integer("unseen_rows", unseen_rows, hint="how many unseen rows were scored")
    x = np.log10(c)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    # both estimates are linear in the rates: slope = w_b . r, intercept (at x = 0) = w_a . r
    w_b = xc / sxx
    w_a = 1.0 / c.size - x.mean() * w_b
    var = _binomial_se(r, n) ** 2
    return MemorisationCurve(copies=c, rates=r, n_rows=n, intercept=float(w_a @ r), slope=float(w_b @ r),
                             intercept_se=math.sqrt(float(w_a ** 2 @ var)), slope_se=math.sqrt(float(w_b ** 2 @ var)),
                             unseen_rate=unseen_rate, unseen_rows=unseen_rows)


def _binomial_se(rates: np.ndarray, n_rows: np.ndarray) -> np.ndarray:
    """sqrt(p (1 - p) / n) with p = (k + 1) / (n + 2), k = rate n: never 0, even at a rate of 0 or 1."""
    p = (rates * n_rows + 1.0) / (n_rows + 2.0)
    return np.sqrt(p * (1.0 - p) / n_rows)


def _greedy(model, prefixes: torch.Tensor, suffix: int, batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for start in range(0, prefixes.shape[0], batch_size):
                ids = prefixes[start:start + batch_size].to(device)
                for _ in range(suffix):  # one full forward per token: rows are short, and it needs no cache
                    nxt = model(input_ids=ids).logits[:, -1].argmax(dim=-1, keepdim=True)
                    ids = torch.cat([ids, nxt.to(ids.dtype)], dim=1)
                out.append(ids[:, prefixes.shape[1]:].cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).to(torch.int64)


def _context(model) -> int:
    return int(getattr(model.config, "max_position_embeddings"))


def _check_context(model, prefix: int, suffix: int) -> None:
    """The last token generated is read from prefix + suffix - 1 positions: they must fit the model's context."""
    context = _context(model)
    if prefix + suffix - 1 > context:
        raise ValueError(f"prefix={prefix} + suffix={suffix} tokens need {prefix + suffix - 1} positions, more than the "
                         f"model's context of {context}: keep prefix + suffix <= {context + 1}, e.g. prefix="
                         f"{max(1, min(prefix, context + 1 - min(suffix, context)))}, suffix={min(suffix, context)}")


def _arguments(model_or_run, rows, prefix, suffix, batch_size):
    """The checked arguments of the row-scoring functions: checked before the model runs."""
    model = model_of(model_or_run)
    prefix = validate.integer("prefix", prefix, hint=f"tokens of prompt, e.g. {DEFAULT_PREFIX}")
    suffix = validate.integer("suffix", suffix, hint=f"tokens to reproduce, e.g. {DEFAULT_SUFFIX}")
    batch_size = validate.integer("batch_size", batch_size, hint=f"rows decoded at once, e.g. {DEFAULT_BATCH_SIZE}")
    _check_context(model, prefix, suffix)
    if not isinstance(rows, torch.Tensor):
        try:
            rows = torch.as_tensor(np.asarray(rows))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"rows must be int token rows [n, >= prefix + suffix = {prefix + suffix}]; got "
                             f"{type(rows).__name__}") from None
    if rows.ndim == 2 and rows.numel() > 0 and rows.shape[1] < prefix + suffix:
        raise ValueError(f"rows have {rows.shape[1]} tokens, fewer than prefix + suffix = {prefix}+{suffix} = "
                         f"{prefix + suffix}: pass rows of at least {prefix + suffix} tokens (e.g. corpus.val_batch("
                         f"n, {prefix + suffix - 1})) or a shorter prefix/suffix")
    if rows.ndim == 2:
        rows = rows[:, :prefix + suffix]  # longer rows: only their start is used, so their length need not fit
    return model, token_rows("rows", rows, model), prefix, suffix, batch_size


def _prefixes(prefixes, model) -> torch.Tensor:
    """prefixes as int64 [n >= 1, p >= 1] of ids in the model's vocabulary; ValueError naming `prefixes` otherwise."""
    hint = "pass int token rows [n, p], e.g. corpus.val_batch(64, 48)[:, :32]"
    if not isinstance(prefixes, torch.Tensor):
        try:
            prefixes = torch.as_tensor(np.asarray(prefixes))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"prefixes must be int token rows [n, p]; got {type(prefixes).__name__}; {hint}") from None
    if prefixes.numel() == 0:
        raise ValueError(f"prefixes is empty: it needs at least one row of at least one token; {hint}")
    if prefixes.dtype.is_floating_point or prefixes.dtype.is_complex or prefixes.dtype == torch.bool \
            or prefixes.ndim != 2:
        raise ValueError(f"prefixes must be int token rows [n, p]; got dtype {prefixes.dtype}, shape "
                         f"{tuple(prefixes.shape)}; {hint}")
    vocab = int(model.config.vocab_size)
    if int(prefixes.min()) < 0 or int(prefixes.max()) >= vocab:
        raise ValueError(f"prefixes holds token ids from {int(prefixes.min())} to {int(prefixes.max())}, outside the "
                         f"model's vocabulary 0..{vocab - 1}")
    return prefixes.to(torch.int64)


def _numeric(value) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        return False
    return arr.dtype != object and (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating))


def _copies(name: str, copies, *, fit: bool = False) -> np.ndarray:
    arr = np.asarray(copies, dtype=np.float64) if _numeric(copies) else None
    shape_ok = arr is not None and (arr.ndim == 1 if fit else arr.ndim <= 1) and arr.size > 0
    if not shape_ok or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be {'a non-empty 1-D array of ' if fit else ''}numbers of copies >= 1, e.g. "
                         f"[1, 10, 100]; got {copies!r}")
    if np.any(arr < 1):
        raise ValueError(f"{name}={np.atleast_1d(arr).tolist()} holds values below 1: the fit is over log10(copies), "
                         "and rows seen 0 times are the baseline, not a point on it; pass their rate as unseen_rate= "
                         "and only groups of copies >= 1 here")
    return arr


def _n_rows(n_rows, groups: int) -> np.ndarray:
    hint = f"the rows scored in each group: one positive integer, or {groups} of them"
    arr = np.asarray(n_rows) if _numeric(n_rows) else None
    if arr is None or not np.issubdtype(arr.dtype, np.integer) or arr.ndim > 1 or np.any(arr < 1):
        raise ValueError(f"n_rows={n_rows!r} must be {hint}")
    if arr.ndim == 1 and arr.size != groups:
        raise ValueError(f"n_rows has {arr.size} values but copies has {groups}: pass {hint}")
    return np.broadcast_to(arr, (groups,)).astype(np.int64)
