"""Test-set contamination: plant copies of test documents into training data, and find them by n-gram overlap.

Detection follows GPT-3 (Brown et al. 2020, "Language Models are Few-Shot Learners", arXiv 2005.14165,
App. C): a test document is "dirty" when any of its 13-grams also occurs in the training data, "clean"
otherwise. GPT-3 compared words with case and punctuation ignored (and used shorter n for benchmarks of
short examples); here a string is compared word for word as split on whitespace, and token ids id for id.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cot_lab.core import validate
from cot_lab.evaluation.documents import as_documents, ngrams, same_kind

GPT3_N = 13  # Brown et al. 2020, App. C: 13-gram collisions


@dataclass(frozen=True)
class DetectionScore:
    """A detector's verdicts against the truth: precision and recall (shares in [0, 1]; NaN when undefined)."""
    precision: float        # flagged documents that are truly contaminated / flagged documents
    recall: float           # contaminated documents flagged / contaminated documents
    true_positives: int
    false_positives: int
    false_negatives: int


@dataclass(frozen=True)
class Overlap:
    """Per test document: its n-grams (counted by position), how many occur in the training data, the verdict."""
    n: int                  # n-gram length, in words (text) or token ids
    kind: str               # "text" or "token ids"
    min_matches: int        # a document is flagged with at least this many matched n-grams (GPT-3: 1)
    ngrams: np.ndarray      # int [n_test]: len(document) - n + 1, or 0 for a document shorter than n
    matched: np.ndarray     # int [n_test]: of those n-grams, how many occur in some training document
    share: np.ndarray       # float [n_test]: matched / ngrams (NaN for a document with no n-gram)
    flagged: np.ndarray     # bool [n_test]: matched >= min_matches
    train_ngrams: int       # distinct n-grams in the training documents

    @property
    def flagged_indices(self) -> np.ndarray:
        """Indices of the test documents flagged as contaminated, ascending."""
        return np.flatnonzero(self.flagged)

    def score(self, contaminated) -> DetectionScore:
        """Precision and recall of the flags against the truly contaminated test documents (indices or a mask)."""
        truth = _mask("contaminated", contaminated, len(self.flagged))
        tp = int(np.sum(self.flagged & truth))
        fp = int(np.sum(self.flagged & ~truth))
        fn = int(np.sum(~self.flagged & truth))
        precision = tp / (tp + fp) if tp + fp else float("nan")
        recall = tp / (tp + fn) if tp + fn else float("nan")
        return DetectionScore(precision, recall, tp, fp, fn)

    def frame(self):
        """A pandas DataFrame, one row per test document: ngrams, matched, share, flagged."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        return pd.DataFrame({"ngrams": self.ngrams, "matched": self.matched, "share": self.share,
                             "flagged": self.flagged}).rename_axis("test_document")


def ngram_overlap(train_docs, test_docs, n: int = GPT3_N, *, min_matches: int = 1) -> Overlap:
    """GPT-3-style contamination check: which test documents share an n-gram (default 13) with the training set.

    Brown et al. 2020 (arXiv 2005.14165), App. C: a test example with any 13-gram collision with the training
    data is dirty. Documents are strings (whitespace words) or sequences of token ids, one kind for both lists.
    `min_matches` raises the bar above GPT-3's single collision. The training n-grams are held exactly (a set of
    tuples: memory grows with the number of distinct training n-grams).
    """
    n = validate.integer("n", n, hint=f"the n-gram length, e.g. {GPT3_N} as in GPT-3")
    min_matches = validate.integer("min_matches", min_matches, hint="e.g. 1: flag a document on any collision")
    train, train_kind = as_documents("train_docs", train_docs)
    test, test_kind = as_documents("test_docs", test_docs)
    kind = same_kind(train_docs=train_kind, test_docs=test_kind)
    seen = set()
    for doc in train:
        seen.update(ngrams(doc, n))
    counts = np.array([max(len(doc) - n + 1, 0) for doc in test], dtype=np.int64)
    matched = np.array([sum(g in seen for g in ngrams(doc, n)) for doc in test], dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(counts > 0, matched / np.maximum(counts, 1), np.nan)
    return Overlap(n=n, kind=kind, min_matches=min_matches, ngrams=counts, matched=matched, share=share,
                   flagged=matched >= min_matches, train_ngrams=len(seen))


@dataclass(frozen=True)
class Plants:
    """Where `contaminate` put each copy: positions[i, c] is the index, in the new list, of copy c of planted[i]."""
    positions: np.ndarray   # int [n_planted, copies]
    copies: int             # copies of each planted document
    seed: int               # the seed that chose the positions
    n_documents: int        # length of the new list (originals + n_planted * copies)

    @property
    def mask(self) -> np.ndarray:
        """bool [n_documents]: True where the new list holds a planted copy."""
        out = np.zeros(self.n_documents, dtype=bool)
        out[self.positions.ravel()] = True
        return out

    def frame(self):
        """A pandas DataFrame, one row per planted copy: planted (index into `planted`), copy, position."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        planted, copy = np.indices(self.positions.shape)
        return pd.DataFrame({"planted": planted.ravel(), "copy": copy.ravel(), "position": self.positions.ravel()})


def contaminate(documents, planted, copies: int = 1, seed: int = 0, *, horizon: int | None = None) -> tuple:
    """Insert `copies` copies of each planted document at seeded random positions in a list of training documents.

    Returns the new list (the originals keep their order; the objects themselves, not copies, are placed) and a
    `Plants` record of where each copy went. `documents` is a list or any finite iterable of documents (strings,
    or sequences of token ids); `planted` are the test documents to leak, of the same kind. This is the
    plain-document version. Given a `Corpus` first, it returns (ContaminatedCorpus, Plants) instead: copies of
    the planted rows [k, T+1] inserted into the corpus's first `horizon` training rows (evaluation/contaminated.py).
    """
    from cot_lab.data.base import Corpus

    if isinstance(documents, Corpus):
        from cot_lab.evaluation.contaminated import contaminate_corpus  # imported here: it imports this module

        return contaminate_corpus(documents, planted, copies, seed, horizon=horizon)
    if horizon is not None:
        raise ValueError(f"horizon={horizon!r} applies only when planting into a Corpus; leave it out for a list")
    copies = validate.integer("copies", copies, low=0, hint="how many copies of each planted document, e.g. 1 or 10")
    seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
    originals = _listed("documents", documents)
    leaked = _listed("planted", planted)
    _, doc_kind = as_documents("documents", originals)
    _, plant_kind = as_documents("planted", leaked)
    same_kind(documents=doc_kind, planted=plant_kind)
    total = len(originals) + len(leaked) * copies
    rng = np.random.default_rng(seed)
    slots = rng.choice(total, size=len(leaked) * copies, replace=False)  # slot k holds copy k % copies of k // copies
    out: list = [None] * total
    is_plant = np.zeros(total, dtype=bool)
    for k, slot in enumerate(slots):
        out[slot] = leaked[k // copies]
        is_plant[slot] = True
    for slot, doc in zip(np.flatnonzero(~is_plant), originals):
        out[slot] = doc
    positions = slots.reshape(len(leaked), copies).astype(np.int64)
    return out, Plants(positions=positions, copies=copies, seed=seed, n_documents=total)


def _listed(name: str, documents) -> list:
    """A list of the documents (a 2-D array or tensor becomes its rows); its entries are checked by as_documents."""
    if isinstance(documents, (str, bytes)):
        raise ValueError(f"{name} is a single string; pass a list of documents, e.g. [{documents[:20]!r}, ...]")
    try:
        return list(documents)
    except TypeError:
        raise ValueError(f"{name}={documents!r} is not a list of documents") from None


def _mask(name: str, value, size: int) -> np.ndarray:
    """Indices or a boolean mask of `size` test documents as a boolean mask; ValueError otherwise."""
    arr = np.asarray(value)
    if arr.dtype == bool:
        if arr.shape != (size,):
            raise ValueError(f"{name} as a mask must have one entry per test document ({size}); got shape {arr.shape}")
        return arr
    if arr.size == 0:
        return np.zeros(size, dtype=bool)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= size:
        raise ValueError(f"{name} must be indices of test documents in 0..{size - 1} or a boolean mask; "
                         f"got {arr[:5].tolist()}")
    out = np.zeros(size, dtype=bool)
    out[arr] = True
    return out
