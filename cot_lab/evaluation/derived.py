"""A corpus whose training stream is made from another's: planted copies, junk, a filter in front.

Each keeps the base's validation set, its exact floor and its decoding (the change is to what the model trains on,
never to what it is scored on), and serves its rows as the base promises: the same rows whatever the batch size.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from cot_lab.data.base import Corpus


class DerivedCorpus(Corpus):
    """The base's validation rows, floor and decoding; subclasses make the training stream (`train_batches`)."""

    def __init__(self, base: Corpus):
        if not isinstance(base, Corpus):
            raise ValueError(f"base={base!r} is not a Corpus; pass one, e.g. cl.load_corpus('synthetic-v3')")
        self.base = base
        self.vocab_size = base.vocab_size

    # The validation set is the base's, untouched, so its true floor is the base's too.
    @property
    def entropy(self):
        return self.base.entropy

    @property
    def entropy_se(self):
        return self.base.entropy_se

    def entropy_for(self, seq_len: int):
        return self.base.entropy_for(seq_len)

    def val_batch(self, n_sequences: int, seq_len: int) -> torch.Tensor:
        """The base's validation set, unchanged: what is derived is the training stream only."""
        return self.base.val_batch(n_sequences, seq_len)

    def decode(self, ids) -> str:
        return self.base.decode(ids)


def batches_of(rows: Iterator[np.ndarray], batch_size: int) -> Iterator[torch.Tensor]:
    """Endless int64 batches [batch_size, T + 1] of consecutive rows: the row order, whatever the batch size."""
    return (torch.from_numpy(np.stack([next(rows) for _ in range(batch_size)])) for _ in iter(int, 1))
