"""Documents as the contamination and duplicate tools read them, and their n-grams and shingle sets.

A document is either a string, read as its whitespace-separated words, or a sequence of integer token ids
(a list, a tuple, a 1-D numpy array or torch tensor; a 2-D array or tensor is a list of documents, one per
row). The unit of every n-gram here is therefore a word or a token id. One call takes one kind: mixing
strings with token ids would make no n-gram ever match, silently, so it is refused.
"""
from __future__ import annotations

from cot_lab.core import validate

TEXT = "text"            # whitespace words
TOKEN_IDS = "token ids"  # integers
_WHAT = "a document is a string (read as whitespace words) or a sequence of integer token ids"


def as_tokens(name: str, document) -> tuple[tuple, str]:
    """One document as a tuple of tokens (words or ints) and its kind (TEXT or TOKEN_IDS)."""
    if isinstance(document, str):
        return tuple(document.split()), TEXT
    if isinstance(document, bytes):
        raise ValueError(f"{name} is bytes; decode it to a string first ({_WHAT})")
    values = document.tolist() if hasattr(document, "tolist") else document  # numpy arrays, torch tensors
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name}={document!r} is not a document; {_WHAT}") from None
    if not all(type(v) is int for v in values):  # the fast path; numpy integers pass the slow one, bools neither
        bad = next((v for v in values if not validate.is_integer(v)), None)
        if bad is not None:
            raise ValueError(f"{name} holds {bad!r}; {_WHAT}")
        values = [int(v) for v in values]
    return tuple(values), TOKEN_IDS


def as_documents(name: str, documents) -> tuple[list[tuple], str]:
    """`documents` (a list, any iterable, or a 2-D array/tensor of rows) as token tuples, with their one kind."""
    if isinstance(documents, (str, bytes)):
        raise ValueError(f"{name} is a single string; pass a list of documents, e.g. [{documents[:20]!r}, ...]")
    try:
        documents = list(documents)
    except TypeError:
        raise ValueError(f"{name}={documents!r} is not a list of documents; {_WHAT}") from None
    if not documents:
        raise ValueError(f"{name} is empty; pass at least one document ({_WHAT})")
    out, kinds = [], set()
    for i, doc in enumerate(documents):
        tokens, kind = as_tokens(f"{name}[{i}]", doc)
        out.append(tokens)
        if tokens:  # an empty document has no kind of its own
            kinds.add(kind)
    if len(kinds) > 1:
        raise ValueError(f"{name} mixes strings and token-id sequences; pass all documents as text or all as "
                         "token ids (their n-grams could never match each other)")
    return out, (kinds.pop() if kinds else TEXT)


def same_kind(**kinds: str) -> str:
    """The one kind of several document lists (keyword: list name); ValueError naming them if they differ."""
    if len(set(kinds.values())) > 1:
        said = ", ".join(f"{name} holds {kind}" for name, kind in kinds.items())
        raise ValueError(f"{said}: pass both as text or both as token ids (text n-grams never match token ids)")
    return next(iter(kinds.values()))


def ngrams(tokens: tuple, n: int) -> list[tuple]:
    """The len(tokens) - n + 1 contiguous n-grams of a document, in order (none if it is shorter than n)."""
    return [tokens[i:i + n] for i in range(len(tokens) - n + 1)]


def shingles(tokens: tuple, n: int) -> set[tuple]:
    """The set of a document's n-gram shingles; a non-empty document shorter than n is one shingle, itself."""
    if 0 < len(tokens) < n:
        return {tokens}
    return set(ngrams(tokens, n))
