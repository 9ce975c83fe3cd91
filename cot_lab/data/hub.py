"""Hugging Face hub datasets as TextCorpus: stream the first max_chars characters, then build and cache."""
from __future__ import annotations

import hashlib
import json
import os
import socket
from urllib.parse import urlparse

from tokenizers import Tokenizer

from cot_lab.core import validate
from cot_lab.core.io import write_text
from cot_lab.core.paths import subdir
from cot_lab.data.text_build import is_cached
from cot_lab.data.text_corpus import TextCorpus
from cot_lab.data.tokenizer import check_vocab_size, tokenizer_hash

OFFLINE_HINT = (
    "These work offline: load_corpus('synthetic'), load_corpus('python-docs'), load_corpus('python-code'), "
    "or load_corpus('/path/to/a/text/file/or/folder')."
)
_TRUE = {"1", "true", "yes", "on"}


class HubUnavailableError(ConnectionError):
    """The Hugging Face hub could not be reached (offline, blocked, or HF_HUB_OFFLINE set)."""


def _offline_reason() -> str | None:
    """Why the hub is unreachable, or None if it seems reachable; a quick check, never a long retry loop."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var}={os.environ[var]} is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # a direct socket says nothing about a proxied route: let datasets try
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=3).close()
    except OSError as e:
        return f"cannot connect to {endpoint} ({e})"
    return None


def _unavailable(name: str, reason: str) -> HubUnavailableError:
    return HubUnavailableError(f"Could not reach the Hugging Face hub to load dataset {name!r}: {reason}. {OFFLINE_HINT}")


def load_hub_corpus(
    name: str,
    split: str = "train",
    text_field: str = "text",
    max_chars: int = 10_000_000,
    vocab_size: int = 512,
    tokenizer: Tokenizer | None = None,
) -> TextCorpus:
    """A TextCorpus of the first max_chars characters of a hub dataset's text_field (each row a document).

    A corpus built once is reused from the cache, offline too; otherwise, when the hub cannot be
    reached, raises HubUnavailableError (a ConnectionError) saying which corpora work offline.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name={name!r} must be a hub dataset name such as 'roneneldan/TinyStories'")
    max_chars = validate.integer("max_chars", max_chars, hint="e.g. 10_000_000")
    check_vocab_size(vocab_size)
    request = [name, split, text_field, max_chars, vocab_size, tokenizer_hash(tokenizer) if tokenizer else None]
    alias = subdir("corpora") / f"hub-{hashlib.sha256(json.dumps(request).encode()).hexdigest()[:24]}.json"
    if alias.exists():
        fingerprint = json.loads(alias.read_text())["fingerprint"]
        if is_cached(fingerprint):
            return TextCorpus(fingerprint, name=f"hf:{name}")

    reason = _offline_reason()
    if reason:
        raise _unavailable(name, reason)
    import datasets  # slow to import; only needed here

    docs, chars = [], 0
    try:
        rows = datasets.load_dataset(name, split=split, streaming=True)
        for i, row in enumerate(rows):
            if text_field not in row:
                raise ValueError(f"text_field={text_field!r} is not a column of {name!r}; its columns are {sorted(row)}")
            text = row[text_field]
            if not isinstance(text, str):
                raise ValueError(f"text_field={text_field!r} of {name!r} holds {type(text).__name__}, not text")
            text = text[: max_chars - chars]
            docs.append((f"{name}/{split}#{i}", text))
            chars += len(text)
            if chars >= max_chars:
                break
    except ConnectionError as e:  # datasets raises the builtin ConnectionError when the hub is unreachable
        raise _unavailable(name, str(e)) from e
    except FileNotFoundError as e:  # datasets' DatasetNotFoundError
        raise FileNotFoundError(f"name={name!r}: no such dataset on the Hugging Face hub ({e})") from e
    if not docs:
        raise ValueError(f"split={split!r} of {name!r} has no rows")

    corpus = TextCorpus.from_documents(f"hf:{name}", lambda: docs, vocab_size=vocab_size, tokenizer=tokenizer)
    write_text(alias, json.dumps({"request": request, "fingerprint": corpus.fingerprint}))
    return corpus
