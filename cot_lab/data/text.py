"""Real-text corpora (python-docs, python-code, local files): documents -> byte-level BPE ids -> cached uint16 arrays.

A corpus is built once per content hash and kept under `subdir("corpora")` as
`<fingerprint>-train.npy`, `<fingerprint>-val.npy`, `<fingerprint>-tokenizer.json` and
`<fingerprint>.json` (metadata, written last, so its presence means the build finished).
Later loads memory-map the arrays, so a corpus costs no RAM until batches are drawn.

Split: a document whose sha256(text) % 20 == 0 goes to validation (about 5%); identical
documents therefore always land on the same side. If that leaves under 3% of the tokens in
validation, more documents are moved there in hash order. A corpus of a single document
(one file) is split by position instead: its last 5% of tokens are validation.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import sysconfig
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from tokenizers import Tokenizer

from cot_lab.data.base import Corpus
from cot_lab.data.tokenizer import VERSION as BPE_VERSION
from cot_lab.data.tokenizer import check_vocab_size, eot_id, tokenizer_hash, train_bpe
from cot_lab.paths import subdir

BUILD_VERSION = "text-v1"  # bump when documents, split or encoding change
VAL_EVERY = 20  # sha256(text) % VAL_EVERY == 0 -> validation
MIN_VAL_FRACTION = 0.03  # top validation up to this share of tokens
MAX_VAL_DOC_FRACTION = 0.5  # never top up with a document that would push validation past this
CHUNK_VAL_FRACTION = 0.05  # single-document corpora: last 5% of tokens
SAMPLE_CHARS = 5_000_000  # BPE is trained on the first ~5 MB of training documents
ENCODE_BATCH_CHARS = 1_000_000
OFFSET_BLOCK = 1024  # train offsets are drawn in blocks of this size, whatever the batch size

TEXT_EXTENSIONS = frozenset(
    ".txt .md .rst .py .pyi .json .jsonl .csv .tsv .tex .html .htm .xml .yaml .yml .toml .ini .cfg "
    ".c .h .cc .cpp .hpp .js .ts .java .go .rs .sh .sql .r .jl .org .log".split()
)
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib-dynload"})
# Code keeps to hand-written library source: no IDE, no codec tables, no py2-era lib2to3, no docs dump.
_SKIP_CODE_DIRS = _SKIP_DIRS | {"idlelib", "lib2to3", "turtledemo", "ensurepip", "encodings", "pydoc_data"}
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)

Documents = Callable[[], Iterable[tuple[str, str]]]  # a fresh stream of (name, text) on every call


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
                _update(h, doc_name, text.encode("utf-8", "surrogatepass"))
            source_hash = h.hexdigest()
        key = json.dumps([BUILD_VERSION, BPE_VERSION, source_hash, vocab_size, SAMPLE_CHARS, tok_hash])
        fingerprint = hashlib.sha256(key.encode()).hexdigest()[:24]
        if not is_cached(fingerprint):
            _build(fingerprint, name, documents, vocab_size, tokenizer)
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
        _check_int("batch_size", batch_size, 1)
        _check_int("seq_len", seq_len, 1)
        _check_int("seed", seed, 0)
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
        _check_int("n_sequences", n_sequences, 1)
        _check_int("seq_len", seq_len, 1)
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


def _check_int(arg: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{arg}={value!r} must be an int >= {low}")


def _update(h, name: str, data: bytes) -> None:
    for part in (name.encode("utf-8", "surrogatepass"), data):
        h.update(len(part).to_bytes(8, "little"))  # length prefixes keep the stream unambiguous
        h.update(part)


def is_cached(fingerprint: str) -> bool:
    """Whether a finished corpus with this fingerprint is in `subdir("corpora")`."""
    root = subdir("corpora")
    names = (f"{fingerprint}.json", f"{fingerprint}-train.npy", f"{fingerprint}-val.npy", f"{fingerprint}-tokenizer.json")
    return all((root / n).exists() for n in names)


def _build(fingerprint: str, name: str, documents: Documents, vocab_size: int, tokenizer: Tokenizer | None) -> None:
    root = subdir("corpora")
    tmps: list[str] = []

    def tmp(suffix: str) -> str:
        fd, path = tempfile.mkstemp(dir=root, prefix=f"{fingerprint}-", suffix=suffix)
        os.close(fd)
        os.chmod(path, 0o644)  # mkstemp makes 0600; a shared cache should be readable by others
        tmps.append(path)
        return path

    spans: list[tuple[str, int, int, int]] = []  # (document name, start, tokens incl. end-of-text, hash)
    try:
        raw_path = tmp(".raw")
        with open(raw_path, "wb") as raw:
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
        if not spans:
            raise ValueError(f"{name!r} holds no text: every document is empty or whitespace")

        train_ranges, val_ranges, val_names, split = _split(spans, pos, name)
        tokens = np.memmap(raw_path, dtype=np.uint16, mode="r", shape=(pos,))
        out = {}
        for part, ranges in (("train", train_ranges), ("val", val_ranges)):
            out[part] = tmp(".npy")
            arr = np.lib.format.open_memmap(out[part], mode="w+", dtype=np.uint16, shape=(sum(b - a for a, b in ranges),))
            at = 0
            for a, b in ranges:
                arr[at : at + b - a] = tokens[a:b]
                at += b - a
            arr.flush()
            del arr
        del tokens
        out["tokenizer"] = tmp(".json")
        tokenizer.save(out["tokenizer"])
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
        out["meta"] = tmp(".json")
        Path(out["meta"]).write_text(json.dumps(meta, indent=1))
        os.replace(out["train"], root / f"{fingerprint}-train.npy")
        os.replace(out["val"], root / f"{fingerprint}-val.npy")
        os.replace(out["tokenizer"], root / f"{fingerprint}-tokenizer.json")
        os.replace(out["meta"], root / f"{fingerprint}.json")  # last: marks the build complete
    finally:
        for path in tmps:
            if os.path.exists(path):
                os.remove(path)


def _split(spans, total: int, name: str):
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


# ---- sources ----------------------------------------------------------------------------


def _stdlib_files(skip: frozenset) -> tuple[Path, list[tuple[str, Path]]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith(("config-", ".")))
        for f in sorted(filenames):
            if f.endswith(".py") and not f.startswith("_sysconfigdata"):
                path = Path(dirpath) / f
                files.append((path.relative_to(root).as_posix(), path))
    return root, files


def _hash_files(tag: str, files: list[tuple[str, Path]]) -> str:
    h = hashlib.sha256(tag.encode())
    for rel, path in files:
        _update(h, rel, path.read_bytes())
    return h.hexdigest()


def _docs_documents() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics  # a plain dict literal: importing it runs nothing else

    for key in sorted(topics):
        yield f"topic:{key}", topics[key]
    for rel, path in _stdlib_files(_SKIP_DIRS)[1]:
        text = _docstrings(path)
        if text:
            yield f"docstrings:{rel}", text


def _docstrings(path: Path) -> str:
    """The module, class and function docstrings of a .py file, read by parsing, never by importing it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old escape sequences in some files
            tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return ""
    parts = [ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, _DOC_NODES)]
    return "\n\n".join(p for p in parts if p)


def _code_documents() -> Iterator[tuple[str, str]]:
    for rel, path in _stdlib_files(_SKIP_CODE_DIRS)[1]:
        yield rel, path.read_bytes().decode("utf-8", errors="replace")


def python_docs(vocab_size: int = 512, tokenizer: Tokenizer | None = None) -> TextCorpus:
    """English prose shipped with this CPython: pydoc help topics plus stdlib docstrings."""
    import pydoc_data

    topics = Path(pydoc_data.__file__).parent / "topics.py"
    source = _hash_files("python-docs", [("pydoc_data/topics.py", topics)] + _stdlib_files(_SKIP_DIRS)[1])
    return TextCorpus.from_documents(
        "python-docs", _docs_documents, vocab_size=vocab_size, source_hash=source, tokenizer=tokenizer
    )


def python_code(vocab_size: int = 512, tokenizer: Tokenizer | None = None) -> TextCorpus:
    """Source code of this CPython's standard library (no tests, IDLE, codecs tables or lib2to3)."""
    source = _hash_files("python-code", _stdlib_files(_SKIP_CODE_DIRS)[1])
    return TextCorpus.from_documents(
        "python-code", _code_documents, vocab_size=vocab_size, source_hash=source, tokenizer=tokenizer
    )


def _local_files(path: Path) -> list[tuple[str, Path]]:
    if not path.exists():
        raise FileNotFoundError(
            f"path={str(path)!r} does not exist: pass an existing text file or folder "
            "(or 'synthetic', 'python-docs', 'python-code')"
        )
    if path.is_file():
        return [(path.name, path)]
    files = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "node_modules"))
        for f in sorted(filenames):
            if not f.startswith(".") and Path(f).suffix.lower() in TEXT_EXTENSIONS:
                files.append(((Path(dirpath) / f).relative_to(path).as_posix(), Path(dirpath) / f))
    if not files:
        raise ValueError(
            f"path={str(path)!r} holds no text files: looked for {' '.join(sorted(TEXT_EXTENSIONS))} "
            "(hidden folders skipped); point it at a folder with such files or at one file"
        )
    return files


def local_text(path: str | os.PathLike, vocab_size: int = 512, tokenizer: Tokenizer | None = None) -> TextCorpus:
    """A corpus from a text file or a folder of text files (walked recursively; each file is a document)."""
    check_vocab_size(vocab_size)
    files = _local_files(Path(path).expanduser())

    def documents() -> Iterator[tuple[str, str]]:
        for rel, file in files:
            yield rel, file.read_bytes().decode("utf-8", errors="replace")

    # Hash relative names + bytes, so a moved folder keeps its fingerprint.
    source = _hash_files("local", files)
    return TextCorpus.from_documents(
        os.fspath(path), documents, vocab_size=vocab_size, source_hash=source, tokenizer=tokenizer
    )
