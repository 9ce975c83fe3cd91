"""`TextCorpus`: a built real-text corpus, memory-mapped, as seeded train windows and a fixed validation set.

Build one with `TextCorpus.from_documents` (see `text_build` for the cache and the split); later
loads memory-map the arrays, so a corpus costs no RAM until batches are drawn.
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterator

import numpy as np
import torch
from tokenizers import Tokenizer

from cot_lab.core import validate
from cot_lab.core.paths import subdir
from cot_lab.data.base import Corpus
from cot_lab.data.text_build import Documents, build, corpus_fingerprint, hash_document, is_cached
from cot_lab.data.tokenizer import check_vocab_size, eot_id, tokenizer_hash

OFFSET_BLOCK = 1024  # train offsets are drawn in blocks of this size, whatever the batch size


class TextCorpus(Corpus):
    """Real text as one stream of BPE ids per split, documents separated by the end-of-text token."""

    entropy = None
    entropy_se = None

    def __init__(self, fingerprint: str, name: str | None = None):
        """Open a corpus already built under `subdir("corpora")`; build one with `TextCorpus.from_documents`."""
        if not is_cached(fingerprint):
            raise FileNotFoundError(f"fingerprint={fingerprint!r}: no built corpus in {subdir('corpora')}")
        root = subdir("corpora")
        meta = json.loads((root / f"{fingerprint}.json").read_text())
        self.fingerprint = fingerprint
        self.name = name if name is not None else meta["name"]
        self.vocab_size = int(meta["vocab_size"])
        self.n_documents = int(meta["n_documents"])
        self.val_documents: tuple[str, ...] = tuple(meta["val_documents"])
        self.split = meta["split"]  # "documents" or "chunk"
        self.train = np.load(root / f"{fingerprint}-train.npy", mmap_mode="r", allow_pickle=False)
        self.val = np.load(root / f"{fingerprint}-val.npy", mmap_mode="r", allow_pickle=False)
        self.tokenizer = Tokenizer.from_file(str(root / f"{fingerprint}-tokenizer.json"))

    @classmethod
    def from_documents(
        cls,
        name: str,
        documents: Documents,
        *,
        vocab_size: int = 512,
        source_hash: str | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> "TextCorpus":
        """Build (or load from cache) a corpus from a re-iterable stream of (name, text) documents.

        source_hash: a hash of everything the documents are made from (cheaper than hashing the
        texts); None hashes the texts. tokenizer: reuse this tokenizer (e.g. another corpus's, to
        evaluate a model out of distribution) instead of training one.
        """
        vocab_size = check_vocab_size(vocab_size)
        tok_hash = None
        if tokenizer is not None:
            if not isinstance(tokenizer, Tokenizer):
                raise ValueError(f"tokenizer must be a tokenizers.Tokenizer (e.g. corpus.tokenizer), got {type(tokenizer).__name__}")
            if tokenizer.get_vocab_size() > vocab_size:
                raise ValueError(
                    f"vocab_size={vocab_size} is smaller than the given tokenizer's {tokenizer.get_vocab_size()} ids: "
                    f"pass vocab_size>={tokenizer.get_vocab_size()}"
                )
            eot_id(tokenizer)
            tok_hash = tokenizer_hash(tokenizer)
        if source_hash is None:
            h = hashlib.sha256()
            for doc_name, text in documents():
                hash_document(h, doc_name, text.encode("utf-8", "surrogatepass"))
            source_hash = h.hexdigest()
        fingerprint = corpus_fingerprint(source_hash, vocab_size, tok_hash)
        if not is_cached(fingerprint):
            build(fingerprint, name, documents, vocab_size, tokenizer)
        return cls(fingerprint, name=name)

    @property
    def train_tokens(self) -> int:
        """Tokens in the train split."""
        return int(self.train.shape[0])

    @property
    def val_tokens(self) -> int:
        """Tokens in the validation split."""
        return int(self.val.shape[0])

    def train_batches(self, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
        """Endless int64 [batch_size, seq_len + 1] windows at seeded random offsets of the train split."""
        validate.integer("batch_size", batch_size, hint="e.g. 16")
        validate.integer("seq_len", seq_len, hint="e.g. 128")
        validate.integer("seed", seed, low=0, hint="e.g. 0")
        if self.train_tokens < seq_len + 1:
            raise ValueError(
                f"seq_len={seq_len} is too long for the train split of {self.name!r} ({self.train_tokens} tokens): "
                f"use seq_len <= {self.train_tokens - 1} or more text"
            )
        return _random_windows(self.train, batch_size, seq_len + 1, seed)

    def val_batch(self, n_sequences: int, seq_len: int) -> torch.Tensor:
        """Fixed, evenly spaced, non-overlapping int64 [n, seq_len + 1] windows of the val split.

        n = min(n_sequences, val_tokens // (seq_len + 1)): asking for more windows than fit gives all that fit.
        """
        validate.integer("n_sequences", n_sequences, hint="e.g. 64")
        validate.integer("seq_len", seq_len, hint="e.g. 128")
        width = seq_len + 1
        fits = self.val_tokens // width
        if fits == 0:
            raise ValueError(
                f"seq_len={seq_len} is too long for the validation split of {self.name!r} "
                f"({self.val_tokens} tokens): use seq_len <= {self.val_tokens - 1} or more text"
            )
        n = min(n_sequences, fits)
        # Integer spacing >= width, so windows never overlap.
        starts = np.arange(n, dtype=np.int64) * (self.val_tokens - width) // max(n - 1, 1)
        return torch.from_numpy(self.val[starts[:, None] + np.arange(width)].astype(np.int64))

    def encode(self, text: str) -> list[int]:
        """Token ids of text under this corpus's tokenizer."""
        return self.tokenizer.encode(text).ids

    def decode(self, ids) -> str:
        """The text of a sequence of token ids (end-of-text tokens shown as <|endoftext|>)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.tokenizer.decode([int(i) for i in np.asarray(ids).reshape(-1)], skip_special_tokens=False)


def _random_windows(tokens: np.ndarray, batch_size: int, width: int, seed: int) -> Iterator[torch.Tensor]:
    rng = np.random.default_rng(seed)
    high = tokens.shape[0] - width + 1
    span = np.arange(width)
    offsets = np.empty(0, dtype=np.int64)
    while True:
        while offsets.size < batch_size:  # fixed-size blocks: row k is the same for every batch size
            offsets = np.concatenate([offsets, rng.integers(0, high, size=OFFSET_BLOCK)])
        take, offsets = offsets[:batch_size], offsets[batch_size:]
        yield torch.from_numpy(tokens[take[:, None] + span].astype(np.int64))

