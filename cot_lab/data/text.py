"""Real-text corpora (python-docs, python-code, local files): where their documents come from.

Each source is a re-iterable stream of (name, text) documents plus a cheap hash of everything they
are made from; `TextCorpus.from_documents` turns it into byte-level BPE ids cached on disk (the
build and the train/validation split are in `text_build`, the corpus itself in `text_corpus`).
CPython's own files are read by parsing, never by importing them.

Every corpus built here carries the terms its text may be used under, `corpus.licence` (an SPDX
identifier where one is known) and where that came from, `corpus.licence_source`: a datasheet
(`cot_lab.evaluation.datasheet`, after Gebru et al. 2018) records them. python-docs and python-code
are CPython's documentation and standard library, under the PSF License Agreement (PSF-2.0). Local
text needs its terms declared, by `licence=` or a licence file in its folder; without either it is
refused. The licence is metadata: it never changes the tokens, so never the fingerprint.
"""
from __future__ import annotations

import ast
import hashlib
import os
import re
import sysconfig
import warnings
from pathlib import Path
from typing import Iterator

from tokenizers import Tokenizer

from cot_lab.data.text_build import Documents, hash_document, is_cached
from cot_lab.data.text_corpus import TextCorpus
from cot_lab.data.tokenizer import check_vocab_size

__all__ = ["CPYTHON_LICENCE", "TEXT_EXTENSIONS", "Documents", "TextCorpus", "is_cached", "is_licence_file",
           "licence_of_text", "local_text", "python_code", "python_docs"]

TEXT_EXTENSIONS = frozenset(
    ".txt .md .rst .py .pyi .json .jsonl .csv .tsv .tex .html .htm .xml .yaml .yml .toml .ini .cfg "
    ".c .h .cc .cpp .hpp .js .ts .java .go .rs .sh .sql .r .jl .org .log".split()
)
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib-dynload"})
# Code keeps to hand-written library source: no IDE, no codec tables, no py2-era lib2to3, no docs dump.
_SKIP_CODE_DIRS = _SKIP_DIRS | {"idlelib", "lib2to3", "turtledemo", "ensurepip", "encodings", "pydoc_data"}
_DOC_NODES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)

# CPython's documentation and standard library are under the PSF License Agreement, version 2 (SPDX PSF-2.0):
# https://docs.python.org/3/license.html (code examples in the documentation are also offered under 0BSD).
CPYTHON_LICENCE = "PSF-2.0"
CPYTHON_LICENCE_SOURCE = "CPython's licence, https://docs.python.org/3/license.html"
# LICENSE, LICENSE.txt, LICENSE.md, LICENSE-MIT, LICENCE*, COPYING, COPYING.LESSER... (any case)
_LICENCE_FILE = re.compile(r"(licen[cs]e|copying)([-_.][\w.-]*)?", re.IGNORECASE)
# Phrases that identify common licence texts (lower case, whitespace collapsed), first match wins;
# anything else is recorded as "see <file>": the file's own text is then the licence.
_LICENCE_PHRASES = (
    ("PSF-2.0", ("python software foundation license",)),
    ("MIT", ("permission is hereby granted, free of charge",)),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("GPL-3.0", ("gnu general public license", "version 3")),
    ("GPL-2.0", ("gnu general public license", "version 2")),
    ("CC-BY-SA-4.0", ("attribution-sharealike 4.0",)),
    ("CC-BY-4.0", ("creative commons attribution 4.0",)),
    ("CC0-1.0", ("cc0 1.0",)),
    ("Unlicense", ("free and unencumbered software released into the public domain",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms", "neither the name")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
)


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


def _with_licence(corpus: TextCorpus, licence: str, source: str) -> TextCorpus:
    """corpus with its terms recorded: `licence` (SPDX id or words) and `licence_source` (where they came from)."""
    corpus.licence, corpus.licence_source = licence, source
    return corpus


def python_docs(vocab_size: int = 512, tokenizer: Tokenizer | None = None) -> TextCorpus:
    """English prose shipped with this CPython: pydoc help topics plus stdlib docstrings (licence PSF-2.0)."""
    import pydoc_data

    topics = Path(pydoc_data.__file__).parent / "topics.py"
    source = _hash_files("python-docs", [("pydoc_data/topics.py", topics)] + _stdlib_files(_SKIP_DIRS)[1])
    corpus = TextCorpus.from_documents(
        "python-docs", _docs_documents, vocab_size=vocab_size, source_hash=source, tokenizer=tokenizer
    )
    return _with_licence(corpus, CPYTHON_LICENCE, CPYTHON_LICENCE_SOURCE)


def python_code(vocab_size: int = 512, tokenizer: Tokenizer | None = None) -> TextCorpus:
    """Source code of this CPython's standard library (no tests, IDLE, codecs tables or lib2to3; licence PSF-2.0)."""
    source = _hash_files("python-code", _stdlib_files(_SKIP_CODE_DIRS)[1])
    corpus = TextCorpus.from_documents(
        "python-code", _code_documents, vocab_size=vocab_size, source_hash=source, tokenizer=tokenizer
    )
    return _with_licence(corpus, CPYTHON_LICENCE, CPYTHON_LICENCE_SOURCE)


def is_licence_file(name: str) -> bool:
    """Whether a file name is a licence file: LICENSE, LICENSE.txt, LICENSE.md, LICENCE*, COPYING* (any case)."""
    return _LICENCE_FILE.fullmatch(name) is not None


def licence_of_text(text: str, file_name: str = "LICENSE") -> str:
    """The SPDX identifier a licence text declares (an `SPDX-License-Identifier:` line, else a known licence's
    wording), or "see <file_name>" when it is none of the common ones (the file's text is then the terms)."""
    declared = re.search(r"SPDX-License-Identifier:\s*([^\s*/]+(?:\s+(?:OR|AND|WITH)\s+[^\s*/]+)*)", text)
    if declared:
        return declared.group(1)
    words = " ".join(text[:20_000].lower().split())
    for spdx, phrases in _LICENCE_PHRASES:
        if all(p in words for p in phrases):
            return spdx
    return f"see {file_name}"


def _licence(path: Path, licence: str | None) -> tuple[str, str]:
    """(licence, licence_source) of local text at `path`: the argument, else a licence file in the folder
    (a single file's own folder); ValueError saying how to declare one when there is neither."""
    if licence is not None:
        if not isinstance(licence, str) or not licence.strip():
            raise ValueError(f"licence={licence!r} must be a non-empty string: an SPDX identifier such as "
                             "'CC-BY-4.0', 'MIT' or 'PSF-2.0', or words such as 'proprietary, own use'")
        return licence.strip(), "argument"
    folder = path if path.is_dir() else path.parent
    found = sorted(f for f in os.listdir(folder) if is_licence_file(f) and (folder / f).is_file())
    if found:  # several (LICENSE-MIT, LICENSE-APACHE): all are recorded, in name order
        terms = [licence_of_text((folder / f).read_bytes().decode("utf-8", errors="replace"), f) for f in found]
        return "; ".join(dict.fromkeys(terms)), "file:" + ",".join(found)
    # Governance: a datasheet records the terms a corpus may be used under; text of unknown terms is not built.
    raise ValueError(
        f"path={str(path)!r} has no licence information, and a corpus needs one: its datasheet (Gebru et al. "
        "2018, 'Datasheets for Datasets') records the terms the text may be used under. Declare them with the "
        f"licence argument, e.g. cl.load_corpus({str(path)!r}, licence=\"CC-BY-4.0\") (an SPDX identifier such "
        "as \"MIT\" or \"PSF-2.0\", or words such as \"proprietary, own use\"), or put a LICENSE file "
        f"(LICENSE, LICENSE.txt, LICENSE.md, LICENCE or COPYING) in {str(folder)!r}"
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
            # A licence file (at any depth) states terms, it is not text to learn from: never a document.
            if not f.startswith(".") and Path(f).suffix.lower() in TEXT_EXTENSIONS and not is_licence_file(f):
                files.append(((Path(dirpath) / f).relative_to(path).as_posix(), Path(dirpath) / f))
    if not files:
        raise ValueError(
            f"path={str(path)!r} holds no text files: looked for {' '.join(sorted(TEXT_EXTENSIONS))} "
            "(hidden folders and licence files skipped); point it at a folder with such files or at one file"
        )
    return files


def local_text(path: str | os.PathLike, vocab_size: int = 512, tokenizer: Tokenizer | None = None,
               licence: str | None = None) -> TextCorpus:
    """A corpus from a text file or a folder of text files (walked recursively; each file is a document).

    licence: the terms the text may be used under, an SPDX identifier ("CC-BY-4.0", "MIT", "PSF-2.0") or words
    ("proprietary, own use"); None reads them from a licence file (LICENSE, LICENSE.txt, LICENSE.md, LICENCE*,
    COPYING*) in the folder, or in a single file's folder. With neither, ValueError. The corpus keeps them as
    `licence` and `licence_source` ("argument" or "file:<name>"); they do not change its tokens or fingerprint.
    Licence files are never documents.
    """
    check_vocab_size(vocab_size)
    root = Path(path).expanduser()
    files = _local_files(root)
    terms, terms_source = _licence(root, licence)

    def documents() -> Iterator[tuple[str, str]]:
        for rel, file in files:
            yield rel, file.read_bytes().decode("utf-8", errors="replace")

    # Hash relative names + bytes, so a moved folder keeps its fingerprint.
    source = _hash_files("local", files)
    corpus = TextCorpus.from_documents(
        os.fspath(path), documents, vocab_size=vocab_size, source_hash=source, tokenizer=tokenizer
    )
    return _with_licence(corpus, terms, terms_source)
