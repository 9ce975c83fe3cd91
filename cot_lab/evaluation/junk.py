"""Junk in the training data: a base corpus's training stream with a seeded share of its rows replaced by junk.

`add_junk(corpus, fraction, kind)` builds a JunkCorpus. Three kinds of junk, each a row of the same length:
    "random"       uniform random token ids: noise, no structure and the wrong unigram statistics
    "shuffled"     the base row it replaces with its tokens in a seeded random order: the right unigram
                   statistics (the same multiset of tokens), no structure
    "boilerplate"  one of `n_templates` fixed rows, drawn once from the base language: real-looking text
                   repeated many times (cookie banners, licence headers, navigation menus)
A perplexity filter under a reference model (quality.py) catches the first two, whose loss is far above any
clean row's; it does NOT catch boilerplate, whose rows are ordinary text of the language and score like clean
rows. Boilerplate is what exact (or near-) deduplication catches: the same row n times (dedup.py).

Positions are global row indices of the training stream: row p is the (p+1)-th row that
`train_batches(b, seq_len, seed)` yields, whatever the batch size b. Row p is junk with probability `fraction`,
independently of every other row, decided by (`seed`, p) alone: the same rows are junk for every batch size
and every training seed, so one `junk_mask(n)` serves every run. A junk row replaces the base row at its
position (the base row is consumed, not pushed back), so every clean row p is the base's row p. The junk
itself is drawn from (`seed`, the training seed, p's chunk of rows); boilerplate templates from `seed` only.
The validation set, the entropy floor and decode are the base's: the validation set stays clean.
"""
from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.data.base import Corpus
from cot_lab.evaluation.derived import DerivedCorpus, batches_of

KINDS = ("random", "shuffled", "boilerplate")
CHUNK = 64                   # rows decided, fetched from the base and filled with junk at a time
TEMPLATE_SEED = 1_000_003    # boilerplate templates come from the base's train stream at seed TEMPLATE_SEED + seed
DEFAULT_TEMPLATES = 4
# Separate streams of random numbers for the junk decision and for the junk content: changing the kind never
# moves which rows are junk.
_MASK_STREAM, _CONTENT_STREAM = 0, 1


class JunkCorpus(DerivedCorpus):
    """`base` with each training row replaced, with probability `fraction` (a share in [0, 1)), by a junk row of
    `kind` ("random", "shuffled" or "boilerplate"; see the module's docstring).

    junk_mask(n) / is_junk(positions) say which rows are junk (the same for every training seed);
    templates(seq_len) gives the boilerplate rows. fraction=0 is exactly the base: its stream and fingerprint.
    """

    def __init__(self, base: Corpus, fraction: float, kind: str = "random", *, seed: int = 0,
                 n_templates: int = DEFAULT_TEMPLATES):
        super().__init__(base)
        self.fraction = validate.fraction("fraction", fraction, hint="the share of training rows replaced by junk, "
                                          "e.g. 0.1 or 0.5 (0 leaves the base stream; 1 would leave no data)")
        self.kind = validate.one_of("kind", kind, KINDS)
        self.seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
        self.n_templates = validate.integer("n_templates", n_templates,
                                            hint=f"how many distinct boilerplate rows, e.g. {DEFAULT_TEMPLATES}")
        self.name = base.name if self.fraction == 0 else f"{base.name} ({self.fraction:.0%} {self.kind} junk)"
        self._templates: dict[int, np.ndarray] = {}
        # fraction=0 leaves the stream exactly the base's, so it keeps the base's fingerprint: a stored clean run is
        # rightly reused. Otherwise the fingerprint covers everything that decides the tokens.
        self.fingerprint = base.fingerprint if self.fraction == 0 else _fingerprint(
            base.fingerprint, self.fraction, self.kind, self.seed, self.n_templates)

    # ------------------------------------------------------------------ where the junk is
    def is_junk(self, positions) -> np.ndarray:
        """bool array, the shape of `positions` (global training-row indices >= 0): True where the row is junk.

        Independent of the training seed, the batch size and seq_len.
        """
        pos = np.asarray(positions)
        if pos.size and (not np.issubdtype(pos.dtype, np.integer) or pos.min() < 0):
            raise ValueError(f"positions must be non-negative integer row indices, e.g. np.arange(1000); got dtype "
                             f"{pos.dtype}" + (f", min {pos.min()}" if np.issubdtype(pos.dtype, np.number) else ""))
        pos = pos.astype(np.int64)
        if pos.size == 0:
            return np.zeros(pos.shape, bool)
        chunks = np.unique(pos // CHUNK)
        masks = np.stack([self._chunk_mask(int(c)) for c in chunks])  # [n_chunks, CHUNK]
        return masks[np.searchsorted(chunks, pos // CHUNK), pos % CHUNK]

    def junk_mask(self, n_rows: int) -> np.ndarray:
        """bool [n_rows]: which of the first n_rows training rows are junk (the same for every training seed)."""
        n_rows = validate.integer("n_rows", n_rows, low=0, hint="how many training rows, e.g. 4000")
        return self.is_junk(np.arange(n_rows))

    def templates(self, seq_len: int) -> np.ndarray:
        """The boilerplate rows at this seq_len: int64 [n_templates, seq_len + 1], fixed by `seed`.

        They are the first rows of the base's train stream at training seed TEMPLATE_SEED + seed: text of the
        language, never validation rows (which would be contamination, not boilerplate).
        """
        seq_len = validate.integer("seq_len", seq_len, hint="e.g. 128")
        if seq_len not in self._templates:
            batch = next(iter(self.base.train_batches(self.n_templates, seq_len, TEMPLATE_SEED + self.seed)))
            self._templates[seq_len] = batch.numpy().astype(np.int64)
        return self._templates[seq_len].copy()

    # ------------------------------------------------------------------ the stream
    def train_batches(self, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
        """Endless int64 batches [batch_size, seq_len + 1]: the base's rows with the junk rows in their places.

        The same (seed, seq_len) gives the same rows whatever the batch size, as the base promises.
        """
        batch_size = validate.integer("batch_size", batch_size, hint="e.g. 16")
        seq_len = validate.integer("seq_len", seq_len, hint="e.g. 128")
        seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
        if self.fraction == 0:
            return self.base.train_batches(batch_size, seq_len, seed)
        rows = self._rows(seq_len, seed)
        return batches_of(rows, batch_size)

    def _rows(self, seq_len: int, seed: int) -> Iterator[np.ndarray]:
        templates = self.templates(seq_len) if self.kind == "boilerplate" else None
        # The base yields its rows CHUNK at a time, chunk c holding rows c*CHUNK .. c*CHUNK + CHUNK - 1.
        for chunk, batch in enumerate(self.base.train_batches(CHUNK, seq_len, seed)):
            rows = batch.numpy().astype(np.int64)  # a copy: the base's tensor is left alone
            mask = self._chunk_mask(chunk)
            if mask.any():
                rows[mask] = self._junk(rows[mask], chunk, seed, templates)
            yield from rows

    def _chunk_mask(self, chunk: int) -> np.ndarray:
        """bool [CHUNK]: which rows of chunk `chunk` are junk, from (seed, chunk) only."""
        rng = np.random.default_rng([self.seed, chunk, _MASK_STREAM])
        return rng.random(CHUNK) < self.fraction

    def _junk(self, replaced: np.ndarray, chunk: int, train_seed: int, templates) -> np.ndarray:
        """Junk rows [k, T+1] for the k base rows `replaced` of one chunk."""
        rng = np.random.default_rng([self.seed, train_seed, chunk, _CONTENT_STREAM])
        if self.kind == "random":
            return rng.integers(0, self.vocab_size, size=replaced.shape, dtype=np.int64)
        if self.kind == "shuffled":
            return rng.permuted(replaced, axis=1)  # each row's own tokens, in a new order
        return templates[rng.integers(0, len(templates), size=len(replaced))]

    def __repr__(self) -> str:
        extra = f", n_templates={self.n_templates}" if self.kind == "boilerplate" else ""
        return f"JunkCorpus({self.base!r}, fraction={self.fraction:g}, kind={self.kind!r}, seed={self.seed}{extra})"


def add_junk(corpus: Corpus, fraction: float, kind: str = "random", seed: int = 0, *,
             n_templates: int = DEFAULT_TEMPLATES) -> JunkCorpus:
    """`corpus` with a share `fraction` of its training rows replaced by junk of `kind` (see JunkCorpus)."""
    return JunkCorpus(corpus, fraction, kind, seed=seed, n_templates=n_templates)


def _fingerprint(base: str, fraction: float, kind: str, seed: int, n_templates: int) -> str:
    text = f"junk:{base}:{fraction!r}:{kind}:{seed}:{n_templates}:{CHUNK}:{TEMPLATE_SEED}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
