"""Corpora: `load_corpus(name)` picks the synthetic language, CPython's docs or code, local text, or a hub dataset."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

from cot_lab.data.base import Corpus
from cot_lab.data.text import TEXT_EXTENSIONS, TextCorpus, local_text, python_code, python_docs

__all__ = ["Corpus", "TextCorpus", "load_corpus"]

BUILTIN = ("synthetic", "synthetic-v3", "python-docs", "python-code")
DEFAULT_VOCAB = 512  # vocab_size of the built-in corpora: panels show read-outs with it before a corpus loads
WHAT_WORKS = (
    "'synthetic', 'synthetic-v3' (many small skills), 'python-docs', 'python-code', a path to a text file or folder, "
    "or 'hf:<dataset>' (e.g. 'hf:roneneldan/TinyStories', needs a network)"
)


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("./", "../", "/", "~", ".\\", "..\\"))
        or Path(name).suffix.lower() in TEXT_EXTENSIONS
        or (os.sep == "\\" and len(name) > 1 and name[1] == ":")  # a Windows drive letter
    )


def load_corpus(name: str | os.PathLike, **kwargs) -> Corpus:
    """The corpus called name; kwargs go to its builder (e.g. vocab_size=512, language_seed=0)."""
    if isinstance(name, os.PathLike):
        return local_text(name, **kwargs)
    if not isinstance(name, str):
        raise ValueError(f"name={name!r} must be a string or a path; one of {WHAT_WORKS}")
    if name.startswith(("synthetic:", "synthetic-v3:")):  # a controlled shift: 'synthetic-v3:rare-topics'
        base, shift = name.split(":", 1)
        return load_corpus(base, **{"shift": shift, **kwargs})
    if name == "synthetic":
        from cot_lab.data.synthetic import SyntheticCorpus  # imported here: it is a separate, heavier module

        return SyntheticCorpus(**kwargs)
    if name == "synthetic-v3":
        from cot_lab.data.synthetic import SyntheticCorpus

        return SyntheticCorpus(**{"version": 3, **kwargs})
    if name == "python-docs":
        return python_docs(**kwargs)
    if name == "python-code":
        return python_code(**kwargs)
    if name.startswith("hf:"):
        from cot_lab.data.hub import load_hub_corpus

        if not name[3:].strip():
            raise ValueError(f"name={name!r} names no dataset: write 'hf:<dataset>', e.g. 'hf:roneneldan/TinyStories'")
        return load_hub_corpus(name[3:], **kwargs)
    if name and Path(name).expanduser().exists():
        return local_text(name, **kwargs)
    if _looks_like_path(name):
        raise FileNotFoundError(f"name={name!r} looks like a path but does not exist; use an existing text file or folder")
    if "/" in name:
        from cot_lab.data.hub import load_hub_corpus

        return load_hub_corpus(name, **kwargs)
    close = difflib.get_close_matches(name, BUILTIN, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"name={name!r} is not a corpus.{hint} Use one of: {WHAT_WORKS}")
