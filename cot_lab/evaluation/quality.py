"""A perplexity quality filter: drop training rows a small reference model finds far too surprising.

As in CCNet (Wenzek et al. 2020, "CCNet: Extracting High Quality Monolingual Datasets from Web Crawl Data",
arXiv 1911.00359), which keeps web documents by their perplexity under a KenLM model trained on Wikipedia;
here the reference is a small model of the kit trained on clean data, and a row's score is its mean loss
(nats/token, `document_losses`; perplexity = exp(loss)).

The threshold is calibrated on clean rows so the false-positive rate (clean rows wrongly dropped) is the one
asked for: with n clean calibration losses sorted ascending, the threshold is the k-th, k = ceil((n + 1)(1 - a))
for a stated rate a (the finite-sample, "conformal" (1 - a) quantile: Vovk, Gammerman & Shafer 2005; Angelopoulos
& Bates 2021, arXiv 2107.07511). A row is junk when its loss is above the threshold. For new clean rows
from the same distribution the chance of a false positive, averaged over calibration sets, is
(n + 1 - k)/(n + 1) <= a (0.78% for n = 256 at a = 1%); one calibration set's actual rate scatters around that
by about sqrt(a(1 - a)/n). The rate must then be measured on clean rows the calibration did not see:
`split_clean_rows` gives calibration rows and held-out rows from one validation set.

What it catches: rows whose loss is far above clean text's (random ids, shuffled text). What it cannot catch:
fluent junk of the language itself, e.g. boilerplate repeated many times (junk.py); that is dedup's job.
"""
from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.core.checkpoint import weights_fingerprint
from cot_lab.data.base import Corpus
from cot_lab.evaluation.derived import DerivedCorpus, batches_of
from cot_lab.evaluation.gate import document_losses
from cot_lab.evaluation.inputs import model_of, token_rows

DEFAULT_FPR = 0.01
MAX_FPR = 0.5             # a filter that may drop half the clean data is no longer a quality filter
CALIBRATION_ROWS = 256    # clean validation rows the one-call helper calibrates on
SCORE_CHUNK = 64          # training rows scored by the reference at a time


@dataclass(frozen=True)
class FilterScore:
    """A filter's verdicts on rows whose truth is known: shares in [0, 1] (NaN when undefined)."""
    precision: float            # junk rows flagged / rows flagged
    recall: float               # junk rows flagged / junk rows
    false_positive_rate: float  # clean rows flagged / clean rows (measured)
    stated_false_positive_rate: float  # what the threshold was calibrated for
    n_rows: int
    n_junk: int
    n_flagged: int
    true_positives: int         # junk rows flagged
    false_positives: int        # clean rows flagged
    threshold: float            # nats/token

    def frame(self):
        """A one-row pandas DataFrame of the score."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        return pd.DataFrame([asdict(self)])

    def __str__(self) -> str:
        return (f"flagged {self.n_flagged} of {self.n_rows} rows ({self.n_junk} junk): precision {self.precision:.3f}, "
                f"recall {self.recall:.3f}; clean rows flagged {self.false_positive_rate:.2%} (stated "
                f"{self.stated_false_positive_rate:.2%}) at loss > {self.threshold:.3f} nats/token")


def calibrate_threshold(reference, clean_rows, false_positive_rate: float = DEFAULT_FPR) -> float:
    """The loss (nats/token) above which a row is called junk: the conformal (1 - false_positive_rate) quantile of
    the reference's per-row losses on `clean_rows` [n, T+1] (see the module's docstring).

    reference: a model or a cl.Run. Needs n >= 1/false_positive_rate - 1 rows (99 at 1%).
    """
    fpr = _fpr(false_positive_rate)
    model = model_of(reference, "reference")
    rows = token_rows("clean_rows", clean_rows, model)
    return _conformal_threshold(document_losses(model, rows), fpr)


def _conformal_threshold(losses: np.ndarray, fpr: float) -> float:
    n = len(losses)
    k = math.ceil((n + 1) * (1 - fpr) - 1e-9)  # the epsilon: (n + 1)(1 - a) is often an integer up to rounding
    if k > n:
        raise ValueError(f"clean_rows has {n} rows, too few to hold a false_positive_rate of {fpr:g}: pass at least "
                         f"{math.ceil(1 / fpr - 1 - 1e-9)} clean rows (e.g. corpus.val_batch(256, seq_len)), or a "
                         f"larger rate, at least {1 / (n + 1):.3g}")
    return float(np.sort(losses)[k - 1])


@dataclass(frozen=True, eq=False)
class QualityFilter:
    """Flags a row as junk when its mean loss under `reference` is above `threshold` (nats/token).

    reference: a model or a cl.Run (its model is kept); false_positive_rate: the rate the threshold was
    calibrated for; n_calibration: how many clean rows it was calibrated on (0: threshold set by hand).
    Build one with QualityFilter.calibrate or quality_filter.
    """
    reference: object = field(repr=False)
    threshold: float
    false_positive_rate: float = DEFAULT_FPR
    n_calibration: int = 0

    def __post_init__(self):
        object.__setattr__(self, "reference", model_of(self.reference, "reference"))
        object.__setattr__(self, "threshold", validate.number("threshold", self.threshold, low=0.0, low_open=False,
                                                               hint="a loss in nats/token, e.g. 4.0"))
        object.__setattr__(self, "false_positive_rate", _fpr(self.false_positive_rate))
        object.__setattr__(self, "n_calibration", validate.integer("n_calibration", self.n_calibration, low=0))

    @classmethod
    def calibrate(cls, reference, clean_rows, false_positive_rate: float = DEFAULT_FPR) -> "QualityFilter":
        """A filter whose threshold is `calibrate_threshold(reference, clean_rows, false_positive_rate)`."""
        model = model_of(reference, "reference")  # once: a cl.Run may load its model from the store
        threshold = calibrate_threshold(model, clean_rows, false_positive_rate)
        return cls(model, threshold, false_positive_rate, int(len(clean_rows)))

    @property
    def context(self) -> int:
        """The longest row the reference can score, in positions (rows of context + 1 tokens)."""
        return int(self.reference.config.max_position_embeddings)

    def scores(self, rows) -> np.ndarray:
        """float64 [n]: each row's mean loss under the reference, nats/token (rows: int token ids [n, T+1])."""
        return document_losses(self.reference, token_rows("rows", rows, self.reference))

    def flags(self, rows) -> np.ndarray:
        """bool [n]: True for the rows called junk (loss above the threshold)."""
        return self.scores(rows) > self.threshold

    def evaluate(self, rows, is_junk) -> FilterScore:
        """The flags on `rows` [n, T+1] against the truth `is_junk` (a bool mask [n], or the junk rows' indices)."""
        flagged = self.flags(rows)
        truth = _mask("is_junk", is_junk, len(flagged))
        tp, fp = int(np.sum(flagged & truth)), int(np.sum(flagged & ~truth))
        n_junk, n_clean = int(truth.sum()), int((~truth).sum())
        return FilterScore(precision=tp / (tp + fp) if tp + fp else float("nan"),
                           recall=tp / n_junk if n_junk else float("nan"),
                           false_positive_rate=fp / n_clean if n_clean else float("nan"),
                           stated_false_positive_rate=self.false_positive_rate, n_rows=len(flagged), n_junk=n_junk,
                           n_flagged=int(flagged.sum()), true_positives=tp, false_positives=fp,
                           threshold=self.threshold)


class FilteredCorpus(DerivedCorpus):
    """`base` with the training rows that `quality_filter` flags dropped: the kept rows, in the base's order.

    The base's rows are scored SCORE_CHUNK at a time by a frozen fp32 CPU copy of the reference (eval mode, no
    gradients) taken when the corpus is built, so training on the GPU is not slowed by a second model there and
    later changes to the reference do not change the stream. A run of N tokens trains on N tokens of kept rows:
    the filter is compared with no filter at equal compute. Rows do not depend on the batch size, as the base
    promises. rows_seen / rows_dropped / kept_fraction count over every stream this corpus has served.
    Trains at seq_len up to the reference's context. val_batch, decode and the entropy floor are the base's.
    """

    def __init__(self, base: Corpus, quality_filter: QualityFilter):
        super().__init__(base)
        if not isinstance(quality_filter, QualityFilter):
            raise ValueError(f"quality_filter={type(quality_filter).__name__} must be a QualityFilter, e.g. "
                             "QualityFilter.calibrate(reference, corpus.val_batch(256, 128))")
        vocab = int(quality_filter.reference.config.vocab_size)
        if vocab != base.vocab_size:
            raise ValueError(f"quality_filter's reference reads {vocab} token ids and base has {base.vocab_size}: use a "
                             "reference trained on this corpus's tokens")
        scorer = copy.deepcopy(quality_filter.reference).to("cpu").float().eval().requires_grad_(False)
        self.scorer = scorer
        self.quality_filter = QualityFilter(scorer, quality_filter.threshold, quality_filter.false_positive_rate,
                                            quality_filter.n_calibration)
        self.name = f"{base.name} (quality-filtered)"
        self.rows_seen = 0
        self.rows_dropped = 0
        self.fingerprint = _fingerprint(base.fingerprint, weights_fingerprint(scorer), quality_filter.threshold)

    @property
    def kept_fraction(self) -> float:
        """Rows kept / rows scored, over every stream served so far (NaN before any)."""
        return 1.0 - self.rows_dropped / self.rows_seen if self.rows_seen else float("nan")

    def train_batches(self, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
        """Endless int64 batches [batch_size, seq_len + 1] of the base's rows the filter keeps, in order."""
        batch_size = validate.integer("batch_size", batch_size, hint="e.g. 16")
        seq_len = validate.integer("seq_len", seq_len, hint=f"e.g. {self.quality_filter.context}")
        seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
        if seq_len > self.quality_filter.context:
            raise ValueError(f"seq_len={seq_len} is longer than the reference's context, {self.quality_filter.context}: "
                             f"train with seq_len <= {self.quality_filter.context}, or filter with a reference of a "
                             "longer context")
        rows = self._rows(seq_len, seed)
        return batches_of(rows, batch_size)

    def _rows(self, seq_len: int, seed: int) -> Iterator[np.ndarray]:
        for batch in self.base.train_batches(SCORE_CHUNK, seq_len, seed):
            keep = ~self.quality_filter.flags(batch)
            self.rows_seen += len(keep)
            self.rows_dropped += int((~keep).sum())
            yield from batch.numpy()[keep]

    def __repr__(self) -> str:
        return (f"FilteredCorpus({self.base!r}, threshold={self.quality_filter.threshold:.4f} nats/token, "
                f"false_positive_rate={self.quality_filter.false_positive_rate:g})")


def split_clean_rows(corpus: Corpus, seq_len: int, n_rows: int = CALIBRATION_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """(calibration rows, held-out rows) of the corpus's validation set, n_rows each, int64 [n, seq_len + 1]:
    rows 0..n-1 and n..2n-1 of `corpus.val_batch(2 * n_rows, seq_len)` (half each if fewer rows exist).

    Calibrate on the first, report the false-positive rate on the second: a rate measured on the calibration
    rows themselves is below the stated one by construction and says nothing.
    """
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus={corpus!r} is not a Corpus; pass one, e.g. cl.load_corpus('synthetic-v3')")
    n_rows = validate.integer("n_rows", n_rows, low=2, hint=f"e.g. {CALIBRATION_ROWS}")
    rows = corpus.val_batch(2 * n_rows, seq_len)
    half = min(n_rows, len(rows) // 2)
    return rows[:half], rows[half:2 * half]


def quality_filter(corpus: Corpus, reference, clean_rows=None,
                   false_positive_rate: float = DEFAULT_FPR) -> tuple[FilteredCorpus, QualityFilter]:
    """(FilteredCorpus of `corpus`, its QualityFilter): a perplexity filter under `reference` (a model or a cl.Run).

    clean_rows: the clean rows to calibrate on; None takes the calibration half of
    `split_clean_rows(corpus, context)` (validation rows 0..255 at the reference's context), so
    `split_clean_rows(corpus, context)[1]` (rows 256..511) is a held-out set to report the false-positive rate on.
    The validation set of a JunkCorpus is the clean base's, so calibrating on it never sees the junk.
    """
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus={corpus!r} is not a Corpus; pass one, e.g. cl.add_junk(corpus, 0.2)")
    fpr = _fpr(false_positive_rate)
    model = model_of(reference, "reference")
    if clean_rows is None:
        clean_rows = split_clean_rows(corpus, int(model.config.max_position_embeddings))[0]
    qf = QualityFilter.calibrate(model, clean_rows, fpr)
    return FilteredCorpus(corpus, qf), qf


def _fpr(value) -> float:
    return validate.number("false_positive_rate", value, low=0.0, high=MAX_FPR,
                           hint="the share of clean rows the filter may drop, e.g. 0.01")


def _mask(name: str, value, n: int) -> np.ndarray:
    """A bool mask [n] from a bool mask or an array of indices; ValueError naming `name` otherwise."""
    arr = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValueError(f"{name} is a mask of shape {arr.shape}, but there are {n} rows: pass a bool mask [{n}] "
                             "(e.g. junk.junk_mask(n)) or the junk rows' indices")
        return arr
    if arr.size and (arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= n):
        raise ValueError(f"{name} must be a bool mask [{n}] or indices in 0..{n - 1} of the junk rows")
    mask = np.zeros(n, bool)
    mask[arr.astype(np.int64)] = True
    return mask


def _fingerprint(base: str, weights: str, threshold: float) -> str:
    return hashlib.sha256(f"quality-filtered:{base}:{weights}:{threshold!r}:{SCORE_CHUNK}".encode()).hexdigest()[:16]
