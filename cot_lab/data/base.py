"""The one interface every corpus offers the trainer: seeded train batches and a fixed validation set."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator

import torch


class Corpus(ABC):
    """A token source with deterministic, disjoint train and validation splits.

    Attributes:
        name: what the user asked for ("synthetic", "python-docs", a path, a hub name).
        vocab_size: number of token ids; every id emitted is in [0, vocab_size).
        fingerprint: a content hash; it changes whenever the tokens would change,
            so the run store can key results on it.
        entropy, entropy_se: the true entropy floor in nats/token and its standard
            error (only corpora whose generator knows exact probabilities; else None).
    """

    name: str
    vocab_size: int
    fingerprint: str
    entropy: float | None = None
    entropy_se: float | None = None

    @abstractmethod
    def train_batches(self, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
        """Endless iterator of int64 tensors [batch_size, seq_len + 1] from the train split.

        Same (seed, seq_len) gives the same sequence of rows whatever the batch size.
        """

    @abstractmethod
    def val_batch(self, n_sequences: int, seq_len: int) -> torch.Tensor:
        """The fixed validation set: int64 [n_sequences, seq_len + 1], identical on every call."""

    def entropy_for(self, seq_len: int) -> tuple[float | None, float | None]:
        """(true entropy floor, its standard error) in nats/token with seq_len tokens of context.

        Corpora whose generator knows exact probabilities override this; real text has no known floor.
        """
        return self.entropy, self.entropy_se

    def decode(self, ids) -> str:
        """Human-readable text for a sequence of token ids."""
        return " ".join(str(int(i)) for i in ids)

    def __repr__(self) -> str:
        extra = f", entropy={self.entropy:.4f}±{self.entropy_se:.4f}" if self.entropy is not None else ""
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size}{extra})"
