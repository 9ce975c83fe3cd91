"""A contaminated corpus: a base corpus's training stream with copies of chosen validation rows planted in it.

`cl.contaminate(corpus, planted, copies=...)` builds one (overlap.contaminate dispatches here for a Corpus).
The planted rows are usually the first validation rows, `corpus.val_batch(n, seq_len)[:k]`; the validation
set itself is unchanged, so the contaminated validation loss is the loss on the planted rows and the other
validation rows are a clean held-out set of the same distribution.

Positions are global row indices of the contaminated training stream: row p is the (p+1)-th row that
`train_batches(b, seq_len, seed)` yields, whatever the batch size b. The plants are spread over the first
`horizon` rows by their own seed (`seed` here), fixed when the corpus is built, so one `plants` record holds
for every training seed; the base's rows fill the other slots in their own order.
"""
from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.data.base import Corpus
from cot_lab.evaluation.derived import DerivedCorpus, batches_of
from cot_lab.evaluation.overlap import Plants

DEFAULT_HORIZON_MIN = 1024   # rows; the default horizon is max(this, 4 x the planted copies)
BASE_CHUNK = 64              # base rows fetched at a time (the base promises rows independent of batch size)


class ContaminatedCorpus(DerivedCorpus):
    """`base` with `copies` copies of each of the `planted` rows [k, T+1] inserted into its first `horizon`
    training rows at seeded positions; `plants` (a Plants record, `.frame()` for a table) says where.

    Trains only at seq_len = T (the planted rows' length less one). val_batch, decode and the entropy floor
    are the base's.
    """

    def __init__(self, base: Corpus, planted, copies: int = 1, *, seed: int = 0, horizon: int | None = None):
        super().__init__(base)
        copies = validate.integer("copies", copies, low=0, hint="how many copies of each planted row, e.g. 1 or 20")
        seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
        rows = _planted_rows(planted, base.vocab_size)
        n_plants = len(rows) * copies
        if horizon is None:
            horizon = max(DEFAULT_HORIZON_MIN, 4 * n_plants)
        horizon = validate.integer("horizon", horizon, hint=f"training rows to spread the plants over, e.g. "
                                   f"{max(DEFAULT_HORIZON_MIN, 4 * n_plants)}")
        if horizon < n_plants:
            raise ValueError(f"horizon={horizon} rows cannot hold {len(rows)} planted rows x {copies} copies = "
                             f"{n_plants} plants; use horizon >= {n_plants}, e.g. {max(4 * n_plants, 1)}")
        self.base, self.planted, self.copies, self.seed, self.horizon = base, rows, copies, seed, horizon
        self.seq_len = rows.shape[1] - 1
        self.name = f"{base.name} (contaminated)"
        rng = np.random.default_rng(seed)
        slots = np.sort(rng.choice(horizon, size=n_plants, replace=False)) if n_plants else np.zeros(0, np.int64)
        which = rng.permutation(n_plants)  # slot j holds copy which[j] % copies of planted row which[j] // copies
        positions = np.zeros(n_plants, np.int64)
        positions[which] = slots
        self.plants = Plants(positions=positions.reshape(len(rows), copies), copies=copies, seed=seed,
                             n_documents=horizon)
        self._slot_row = {int(s): int(w // copies) for s, w in zip(slots, which)}  # global position -> planted row
        # copies=0 leaves the stream exactly the base's, so it keeps the base's fingerprint: a stored clean run
        # is rightly reused. Otherwise the fingerprint covers everything that decides the tokens.
        self.fingerprint = base.fingerprint if copies == 0 else _fingerprint(base.fingerprint, rows, copies, seed,
                                                                               horizon)

    # The floor of the validation rows is the base's (DerivedCorpus): the planted rows are a tiny share of the
    # training stream. On the planted rows themselves a model that memorised them can go below it; that gap is the
    # lesson.

    def train_batches(self, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
        """Endless int64 batches [batch_size, seq_len + 1]: the base's rows with the plants at their positions.

        The same (seed, seq_len) gives the same rows whatever the batch size, as the base promises.
        """
        batch_size = validate.integer("batch_size", batch_size, hint="e.g. 16")
        seq_len = validate.integer("seq_len", seq_len, hint=f"e.g. {self.seq_len}")
        seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
        if seq_len != self.seq_len:
            raise ValueError(f"seq_len={seq_len}, but the planted rows have {self.seq_len + 1} tokens; train with "
                             f"seq_len={self.seq_len}, or plant rows of val_batch(n, {seq_len})")
        rows = self._rows(seq_len, seed)
        return batches_of(rows, batch_size)

    def _rows(self, seq_len: int, seed: int) -> Iterator[np.ndarray]:
        base_rows = (row for batch in self.base.train_batches(BASE_CHUNK, seq_len, seed) for row in batch.numpy())
        position = 0
        while True:
            k = self._slot_row.get(position)
            yield self.planted[k].copy() if k is not None else next(base_rows)
            position += 1

    def __repr__(self) -> str:
        return (f"ContaminatedCorpus({self.base!r}, planted={len(self.planted)} rows of {self.seq_len + 1} tokens, "
                f"copies={self.copies}, seed={self.seed}, horizon={self.horizon})")


def contaminate_corpus(corpus: Corpus, planted, copies: int = 1, seed: int = 0, *,
                       horizon: int | None = None) -> tuple[ContaminatedCorpus, Plants]:
    """(ContaminatedCorpus, its Plants): what cl.contaminate returns when its first argument is a Corpus."""
    dirty = ContaminatedCorpus(corpus, planted, copies, seed=seed, horizon=horizon)
    return dirty, dirty.plants


def _planted_rows(planted, vocab_size: int) -> np.ndarray:
    """The planted rows as int64 [k, T+1] with k >= 1, T >= 1 and ids in [0, vocab_size); ValueError otherwise."""
    hint = "pass validation rows of one length, e.g. corpus.val_batch(64, 128)[:4]"
    if isinstance(planted, (str, bytes)):
        raise ValueError(f"planted is a string; {hint}")
    try:
        arr = np.asarray(planted.numpy() if isinstance(planted, torch.Tensor) else planted)
    except ValueError:  # ragged lists
        raise ValueError(f"planted rows have different lengths; {hint}") from None
    if arr.dtype == object:
        raise ValueError(f"planted rows have different lengths or are not token ids; {hint}")
    if arr.size == 0:
        raise ValueError(f"planted is empty; {hint}")
    if arr.ndim != 2:
        raise ValueError(f"planted must be rows of token ids [k, seq_len + 1]; got shape {arr.shape}; {hint}")
    if arr.shape[1] < 2:
        raise ValueError(f"planted rows have {arr.shape[1]} token(s); a training row needs at least 2 (seq_len >= 1); "
                         f"{hint}")
    if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= vocab_size:
        raise ValueError(f"planted must hold integer token ids in [0, {vocab_size}) of the base corpus; {hint}")
    return arr.astype(np.int64)


def _fingerprint(base: str, rows: np.ndarray, copies: int, seed: int, horizon: int) -> str:
    h = hashlib.sha256(f"contaminated:{base}:{rows.shape}:{copies}:{seed}:{horizon}:".encode())
    h.update(np.ascontiguousarray(rows).tobytes())
    return h.hexdigest()[:16]
