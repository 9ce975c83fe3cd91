"""Real-text corpora (python-docs, python-code, local files): where their documents come from.

Each source is a re-iterable stream of (name, text) documents plus a cheap hash of everything they
are made from; `TextCorpus.from_documents` turns it into byte-level BPE ids cached on disk (the
build and the train/validation split are in `text_build`, the corpus itself in `text_corpus`).
CPython's own files are read by parsing, never by importing them.
"""
from __future__ import annotations

import ast
import hashlib
import os
import sysconfig
import warnings
from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer

from cot_lab.data.text_build import Documents, hash_document, is_cached
from cot_lab.data.text_corpus import TextCorpus
from cot_lab.data.tokenizer import check_vocab_size

__all__ = ["TEXT_EXTENSIONS", "Documents", "TextCorpus", "is_cached", "local_text", "python_code", "python_docs"]

TEXT_EXTENSIONS = frozenset(
    ".txt .md .rst .py .pyi .json .jsonl .csv .tsv .tex .html .htm .xml .yaml .yml .toml .ini .cfg "
    ".c .h .cc .cpp .hpp .js .ts .java .go .rs .sh .sql .r .jl .org .log".split()
)
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib-dynload"})
# Code keeps to hand-written library source: no IDE, no codec tables, no py2-era lib2to3, no docs dump.
_SKIP_CODE_DIRS = _SKIP_DIRS | {"idlelib", "lib2to3", "turtledemo", "ensurepip", "encodings", "pydoc_data"}
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


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
        hash_document(h, rel, path.read_bytes())
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
