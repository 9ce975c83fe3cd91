"""Controlled distribution shifts of the synthetic language, each with an exact floor of its own.

A shift changes how often the language's documents take some forms, never the language itself: the
words, every topic's vocabulary, the preference tables (its knowledge), the names and the grammar's
states stay those of the unshifted language, so a model trained on it is tested on what it should
already know, in proportions it rarely saw. Two kinds, alone or together (`ShiftSpec`):

  topics   documents come only from the topics named: the topic prior is conditioned on them,
           p(k | k in S) = p(k) / p(S), and is 0 elsewhere. In version 3 topics have Zipf frequencies,
           so "rare-topics" (12-15) are the ~8% of documents a model trained on the language saw least,
           and "common-topics" (0-11) is the complement, to train on with those four truly held out.
  nesting  relative clauses ("that ... ,") and brackets ("( ... )") open `nesting` times as often: the
           weights of "that" and "(" in the grammar's class table are multiplied (each state is
           renormalised), so clause stacks run deeper (up to MAX_DEPTH) than training mostly showed.

Why the floor stays exact: the sampler and the scorer read the topic prior and the class table from the
`Language`, so a Language built with the shifted Rules draws the shifted documents and scores exactly
what it draws: Bayes' rule over the conditioned prior (topics outside S have prior 0), the reweighted
class table, everything else unchanged. `SyntheticCorpus(version=3, shift=...)` (or
`load_corpus("synthetic-v3:rare-topics")`) builds one; its `entropy` is then the shifted floor, estimated
as the unshifted one is (the mean exact -log p over 2^19 validation tokens, with its standard error), and
a model's excess loss above it is the price of the shift plus what it has not learned.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from cot_lab.data.synthetic_language import Language, mixture
from cot_lab.data.synthetic_rules import BOS, LPAREN, N_TOPICS, THAT, TOPIC_CLASSES, VOCAB_SIZE, Rules
from cot_lab.data.synthetic_walker import Walker

MAX_NESTING = 100.0
FORM = ("a preset name ({presets}), a spec such as 'topics=12,13,14,15+nesting=10', "
        "or ShiftSpec(topics=(12, 13, 14, 15), nesting=10.0)")


@dataclass(frozen=True)
class ShiftSpec:
    """A controlled shift: topics (the topics documents may come from; None: all) and nesting (how many
    times as often clauses and brackets open; 1: as unshifted, 0: never). It must change something."""

    topics: tuple | None = None
    nesting: float = 1.0

    def __post_init__(self):
        topics = self.topics
        if topics is not None:
            items = [topics] if isinstance(topics, (int, np.integer)) else topics
            try:
                items = list(items)
            except TypeError:
                items = None
            if (not items or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in items)
                    or not all(0 <= k < N_TOPICS for k in items) or len(set(items)) != len(items)):
                raise ValueError(f"topics={self.topics!r} must name distinct topics in 0..{N_TOPICS - 1}, e.g. "
                                 f"(12, 13, 14, 15) (the rarest in version 3), or be None (all topics)")
            if len(items) == N_TOPICS:
                raise ValueError(f"topics={self.topics!r} names every topic: that shifts nothing; name fewer, "
                                 "e.g. (12, 13, 14, 15), or leave topics=None")
            object.__setattr__(self, "topics", tuple(sorted(int(k) for k in items)))
        nesting = self.nesting
        if (isinstance(nesting, bool) or not isinstance(nesting, (int, float, np.integer, np.floating))
                or not math.isfinite(nesting) or not 0 <= nesting <= MAX_NESTING):
            raise ValueError(f"nesting={nesting!r} must be a number in [0, {MAX_NESTING:g}]: how many times as often "
                             "clauses and brackets open (1: as unshifted, 0: never), e.g. 10")
        object.__setattr__(self, "nesting", float(nesting))
        if self.topics is None and self.nesting == 1.0:
            raise ValueError("ShiftSpec(topics=None, nesting=1.0) shifts nothing: name some topics, e.g. "
                             "topics=(12, 13, 14, 15), or another nesting, e.g. nesting=10")

    @property
    def spec(self) -> str:
        """The canonical text form, e.g. 'topics=12,13,14,15+nesting=10' (what `parse_shift` reads back)."""
        parts = [f"topics={','.join(map(str, self.topics))}"] if self.topics is not None else []
        if self.nesting != 1.0:
            parts.append(f"nesting={np.format_float_positional(self.nesting, trim='-')}")
        return "+".join(parts)

    @property
    def label(self) -> str:
        """The preset's name where this is a preset, else `spec`."""
        return next((name for name, s in SHIFTS.items() if s == self), self.spec)

    def apply(self, rules: Rules) -> Rules:
        """A copy of a language version's Rules with this shift's topic prior and grammar weights."""
        prior = rules.topic_prior
        if self.topics is not None:
            if self.topics[-1] >= rules.n_topics:
                raise ValueError(f"topics={self.topics} names topics the language lacks: it has 0..{rules.n_topics - 1}")
            keep = np.zeros(rules.n_topics, bool)
            keep[list(self.topics)] = True
            prior = np.where(keep, prior, 0.0) / prior[keep].sum()
        base = rules.base
        if self.nesting != 1.0:
            base = {s: {k: w * self.nesting if k in (THAT, LPAREN) else w for k, w in weights.items()}
                    for s, weights in base.items()}
        return dataclasses.replace(rules, version=f"{rules.version}+shift:{self.spec}", topic_prior=prior, base=base)

    def describe(self, rules: Rules) -> str:
        """One line on what this shift does to the language of `rules` (the unshifted version's)."""
        parts = []
        if self.topics is not None:
            share = float(rules.topic_prior[list(self.topics)].sum())
            parts.append(f"documents only from topics {', '.join(map(str, self.topics))} "
                         f"({share:.1%} of the unshifted language's documents)")
        if self.nesting != 1.0:
            parts.append(f"relative clauses and brackets open {self.nesting:g}x as often")
        return f"Shift {self.label!r}: " + "; ".join(parts) + " (same words, topics and tables; exact floor)."


SHIFTS = {
    "rare-topics": ShiftSpec(topics=(12, 13, 14, 15)),
    "common-topics": ShiftSpec(topics=tuple(range(12))),
    "deep-nesting": ShiftSpec(nesting=10.0),
}


def _form() -> str:
    return FORM.format(presets=", ".join(repr(k) for k in SHIFTS))


def parse_shift(shift) -> ShiftSpec | None:
    """None, a ShiftSpec, a preset name (SHIFTS) or a spec text ('topics=12,13+nesting=10') as a ShiftSpec."""
    if shift is None or isinstance(shift, ShiftSpec):
        return shift
    if not isinstance(shift, str):
        raise ValueError(f"shift={shift!r} must be None (no shift), {_form()}")
    text = shift.strip()
    if text in SHIFTS:
        return SHIFTS[text]
    fields = {}
    for part in text.split("+"):
        key, eq, value = (s.strip() for s in part.partition("="))
        if key not in ("topics", "nesting") or not eq or key in fields or not value:
            raise ValueError(f"shift={shift!r} is not a shift; use {_form()}")
        fields[key] = value
    try:
        topics = tuple(int(k) for k in fields["topics"].split(",")) if "topics" in fields else None
        nesting = float(fields.get("nesting", 1.0))
    except ValueError:
        raise ValueError(f"shift={shift!r}: topics takes integers and nesting a number; use {_form()}") from None
    try:
        return ShiftSpec(topics=topics, nesting=nesting)
    except ValueError as err:
        raise ValueError(f"shift={shift!r}: {err}") from None


# ---------------------------------------------------------------- what a set of rows holds
def _rows(rows) -> np.ndarray:
    rows = np.asarray(rows.detach().cpu() if hasattr(rows, "detach") else rows)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < 2 or rows.dtype.kind not in "iu":
        raise ValueError(f"rows must be a 2-D integer array [n >= 1, length >= 2], got shape {rows.shape}; "
                         "e.g. corpus.val_batch(64, 128)")
    if rows.min() < 0 or rows.max() >= VOCAB_SIZE or (rows[:, 0] != BOS).any():
        raise ValueError(f"rows must hold ids in [0, {VOCAB_SIZE}) and start with <doc> ({BOS}), as val_batch rows do")
    return rows.astype(np.int64)


def _language(corpus) -> Language:
    language = getattr(corpus, "language", None)
    if not isinstance(language, Language):
        raise ValueError(f"corpus={corpus!r} must be a synthetic corpus, e.g. cl.load_corpus('synthetic-v3')")
    return language


def topic_posterior(corpus, rows) -> np.ndarray:
    """p(topic | every topic word of the document) under `corpus`'s topic prior, for each document begun in
    rows [n, T + 1] (row by row, in order): float64 [n_docs, n_topics]. With the unshifted corpus it shows
    which topics a shifted set's documents come from."""
    language, rows = _language(corpus), _rows(rows)
    n, length = rows.shape
    cls, lemma = language.tok_class[rows], language.tok_lemma[rows]
    doc = np.cumsum(rows == BOS, axis=1) - 1
    doc += np.concatenate([[0], np.cumsum(doc[:, -1] + 1)[:-1]])[:, None]  # numbered across rows
    loglik = np.zeros((int(doc[-1, -1]) + 1, language.rules.n_topics))
    w = Walker(n, language.rules)
    for t in range(1, length):
        c = cls[:, t]
        rest, pref = mixture(language, w.rules(c), lemma[:, t])
        r = np.flatnonzero(np.isin(c, TOPIC_CLASSES))
        lik = rest[r, None] * language.token_topic_p[rows[r, t]] + pref[r, None]
        np.add.at(loglik, doc[r, t], np.log(lik))
        w.advance(c, lemma[:, t])
    with np.errstate(divide="ignore"):
        s = loglik + np.log(language.rules.topic_prior)
    post = np.exp(s - s.max(1, keepdims=True))
    return post / post.sum(1, keepdims=True)


def clause_depths(corpus, rows) -> np.ndarray:
    """How many clauses and brackets are open before each token t = 1..T of rows [n, T + 1]: int64 [n, T]."""
    language, rows = _language(corpus), _rows(rows)
    n, length = rows.shape
    cls, lemma = language.tok_class[rows], language.tok_lemma[rows]
    depths = np.zeros((n, length - 1), np.int64)
    w = Walker(n, language.rules)
    for t in range(1, length):
        depths[:, t - 1] = w.depth
        w.advance(cls[:, t], lemma[:, t])
    return depths
