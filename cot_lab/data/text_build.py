"""Building a real-text corpus once: documents -> byte-level BPE ids -> cached uint16 arrays.

A corpus is built once per content hash and kept under `subdir("corpora")` as
`<fingerprint>-train.npy`, `<fingerprint>-val.npy`, `<fingerprint>-tokenizer.json` and
`<fingerprint>.json` (metadata, written last, so its presence means the build finished).

Split: a document whose sha256(text) % 20 == 0 goes to validation (about 5%); identical
documents therefore always land on the same side. If that leaves under 3% of the tokens in
validation, more documents are moved there in hash order. A corpus of a single document
(one file) is split by position instead: its last 5% of tokens are validation.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from typing import BinaryIO, Callable, Iterable

import numpy as np
from tokenizers import Tokenizer

from cot_lab.core.io import atomic_path
from cot_lab.core.paths import subdir
from cot_lab.data.tokenizer import VERSION as BPE_VERSION
from cot_lab.data.tokenizer import eot_id, train_bpe

BUILD_VERSION = "text-v1"  # bump when documents, split or encoding change
VAL_EVERY = 20  # sha256(text) % VAL_EVERY == 0 -> validation
MIN_VAL_FRACTION = 0.03  # top validation up to this share of tokens
MAX_VAL_DOC_FRACTION = 0.5  # never top up with a document that would push validation past this
CHUNK_VAL_FRACTION = 0.05  # single-document corpora: last 5% of tokens
SAMPLE_CHARS = 5_000_000  # BPE is trained on the first ~5 MB of training documents
ENCODE_BATCH_CHARS = 1_000_000

Documents = Callable[[], Iterable[tuple[str, str]]]  # a fresh stream of (name, text) on every call
Span = tuple[str, int, int, int]  # (document name, start, tokens incl. end-of-text, hash)


def hash_document(h, name: str, data: bytes) -> None:
    """Feed one named document into the hash `h`, length-prefixed so the stream is unambiguous."""
    for part in (name.encode("utf-8", "surrogatepass"), data):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)


def corpus_fingerprint(source_hash: str, vocab_size: int, tok_hash: str | None) -> str:
    """The cache key of a build: 24 hex digits over the build and BPE versions, the source and the vocabulary."""
    key = json.dumps([BUILD_VERSION, BPE_VERSION, source_hash, vocab_size, SAMPLE_CHARS, tok_hash])
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def is_cached(fingerprint: str) -> bool:
    """Whether a finished corpus with this fingerprint is in `subdir("corpora")`."""
    root = subdir("corpora")
    names = (f"{fingerprint}.json", f"{fingerprint}-train.npy", f"{fingerprint}-val.npy", f"{fingerprint}-tokenizer.json")
    return all((root / n).exists() for n in names)


def build(fingerprint: str, name: str, documents: Documents, vocab_size: int, tokenizer: Tokenizer | None) -> None:
    """Encode `documents`, split them and write the four files of corpus `fingerprint` (metadata last)."""
    root = subdir("corpora")
    fd, raw_path = tempfile.mkstemp(dir=root, prefix=f"{fingerprint}-", suffix=".raw")  # scratch, never renamed
    os.close(fd)
    try:
        with open(raw_path, "wb") as raw:
            tokenizer, spans, pos = _encode(raw, documents, vocab_size, tokenizer)
        if not spans:
            raise ValueError(f"{name!r} holds no text: every document is empty or whitespace")
        train_ranges, val_ranges, val_names, split = _split(spans, pos, name)
        meta = {
            "version": BUILD_VERSION,
            "name": name,
            "vocab_size": vocab_size,
            "train_tokens": sum(b - a for a, b in train_ranges),
            "val_tokens": sum(b - a for a, b in val_ranges),
            "n_documents": len(spans),
            "split": split,
            "val_documents": val_names,
        }
        # Four files make one build, so each goes to a temporary file and none is renamed before all
        # four are written. An ExitStack closes its atomic_paths in reverse order of entry: the
        # metadata, entered first, is renamed last (after train, val, tokenizer), so its presence
        # marks the build complete; an error removes every temporary file not yet renamed.
        with contextlib.ExitStack() as stack:
            meta_tmp, tok_tmp, val_tmp, train_tmp = (
                stack.enter_context(atomic_path(root / f"{fingerprint}{suffix}"))
                for suffix in (".json", "-tokenizer.json", "-val.npy", "-train.npy"))
            tokens = np.memmap(raw_path, dtype=np.uint16, mode="r", shape=(pos,))
            for path, ranges in ((train_tmp, train_ranges), (val_tmp, val_ranges)):
                arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(sum(b - a for a, b in ranges),))
                at = 0
                for a, b in ranges:
                    arr[at : at + b - a] = tokens[a:b]
                    at += b - a
                arr.flush()
                del arr
            del tokens
            tokenizer.save(str(tok_tmp))
            meta_tmp.write_text(json.dumps(meta, indent=1))
    finally:
        if os.path.exists(raw_path):
            os.remove(raw_path)


def _encode(raw: BinaryIO, documents: Documents, vocab_size: int,
            tokenizer: Tokenizer | None) -> tuple[Tokenizer | None, list[Span], int]:
    """Write every non-blank document's ids plus end-of-text to `raw`: (tokenizer, spans, tokens written).

    Without a tokenizer, one is trained on the first SAMPLE_CHARS characters of documents the
    hash rule keeps for training (documents wait in memory until then).
    """
    spans: list[Span] = []
    pos = 0

    def encode(batch: list[tuple[str, str, int]]) -> None:
        nonlocal pos
        eot = eot_id(tokenizer)
        for (doc, _, h), enc in zip(batch, tokenizer.encode_batch([t for _, t, _ in batch])):
            ids = np.asarray(enc.ids + [eot], dtype=np.uint16)
            raw.write(ids.tobytes())
            spans.append((doc, pos, ids.size, h))
            pos += ids.size

    pending: list[tuple[str, str, int]] = []
    pending_chars, sample, sample_chars = 0, [], 0
    for doc, text in documents():
        if not text.strip():
            continue
        h = int.from_bytes(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:8], "big")
        pending.append((doc, text, h))
        pending_chars += len(text)
        if tokenizer is None:
            if h % VAL_EVERY:  # the tokenizer never sees validation documents of the hash rule
                sample.append(text)
                sample_chars += len(text)
            if sample_chars >= SAMPLE_CHARS:
                tokenizer = train_bpe(sample, vocab_size)
        elif pending_chars >= ENCODE_BATCH_CHARS:
            encode(pending)
            pending, pending_chars = [], 0
    if tokenizer is None and pending:
        tokenizer = train_bpe(sample or [t for _, t, _ in pending], vocab_size)
    if pending:
        encode(pending)
    return tokenizer, spans, pos


def _split(spans: list[Span], total: int, name: str):
    """(train ranges, val ranges, val document names, split kind) over the token positions."""
    if len(spans) == 1:
        cut = total - max(1, round(CHUNK_VAL_FRACTION * total))
        if cut < 1:
            raise ValueError(f"{name!r} is too short to split into train and validation ({total} tokens)")
        return [(0, cut)], [(cut, total)], [spans[0][0]], "chunk"
    is_val = [h % VAL_EVERY == 0 for _, _, _, h in spans]
    if all(is_val):  # keep some training text: the largest document goes back to train
        is_val[max(range(len(spans)), key=lambda i: spans[i][2])] = False
    val_tokens = sum(n for (_, _, n, _), v in zip(spans, is_val) if v)
    for i in sorted(range(len(spans)), key=lambda i: spans[i][3]):  # deterministic top-up: hash order
        if val_tokens >= MIN_VAL_FRACTION * total and any(is_val):
            break
        if not is_val[i] and val_tokens + spans[i][2] <= MAX_VAL_DOC_FRACTION * total:
            is_val[i] = True
            val_tokens += spans[i][2]
    train = [(a, a + n) for (_, a, n, _), v in zip(spans, is_val) if not v]
    val = [(a, a + n) for (_, a, n, _), v in zip(spans, is_val) if v]
    return train, val, [d for (d, _, _, _), v in zip(spans, is_val) if v], "documents"
