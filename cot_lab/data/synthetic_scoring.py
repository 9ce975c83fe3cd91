"""Exact scoring of synthetic-language rows from the tokens alone: -log p of each token, the next-token distribution.

The hidden topic is marginalised with Bayes' rule over the document so far; `score` can also
score as a model blind to one layer would (ABLATIONS).
"""
from __future__ import annotations

import numpy as np

from cot_lab.data.synthetic_language import Language, mixture
from cot_lab.data.synthetic_rules import (
    BOS, CLASS_START, CLOSER, COMMA, DOT, NAME, NAME_Q, NEW_NAME_P, N_NAMES, RPAREN, TOPIC_CLASSES, VERB_PL,
    VERB_SG
)
from cot_lab.data.synthetic_walker import Walker

ABLATIONS = ("topic", "knowledge", "copy", "agreement", "nesting")


def score(lang: Language, rows: np.ndarray, ablate: tuple = (), shares: dict | None = None) -> np.ndarray:
    """-log p(token_t | tokens_<t of its row) in nats for positions 1..T of rows [n, T + 1] (row[0] = <doc>).

    `ablate` scores as a model blind to some layers would (see ABLATIONS); "agreement" and
    "nesting" need `shares`, the marginal frequencies {"verb": [sg, pl], "closer": [. , )]}
    that a blind model can still learn.
    """
    class_nats, word_nats = score_parts(lang, rows, ablate, shares)
    return class_nats + word_nats


def score_parts(lang: Language, rows: np.ndarray, ablate: tuple = (), shares: dict | None = None):
    """`score` in its two parts, (-log p(class of token_t | ...), -log p(token_t | its class, ...)): [n, T] each.

    Every token's id block is its class, so the two parts sum to the token's -log p.
    """
    n, length = rows.shape
    cls, lemma = lang.tok_class[rows], lang.tok_lemma[rows]
    log_class, log_name = np.zeros((n, length - 1)), np.zeros((n, length - 1))
    rest, pref = np.zeros((n, length - 1)), np.zeros((n, length - 1))  # the mixture at each position
    w = Walker(n, lang.rules)
    for t in range(1, length):
        p = lang.class_p[w.key()]
        c = cls[:, t]
        pc = p[w.rows, c]
        if "agreement" in ablate:  # verb mass shared out by the marginal sg/pl frequency
            verb = (c == VERB_SG) | (c == VERB_PL)
            pc = np.where(verb, (p[:, VERB_SG] + p[:, VERB_PL]) * shares["verb"][(c == VERB_PL).astype(np.int64)], pc)
        if "nesting" in ablate:  # closer mass shared out by the marginal . , ) frequency
            k = np.select([c == DOT, c == COMMA, c == RPAREN], [0, 1, 2], -1)
            pc = np.where(k >= 0, p[:, CLOSER].sum(1) * shares["closer"][k], pc)
        log_class[:, t - 1] = np.log(pc)
        names = np.flatnonzero(c == NAME)
        if names.size:
            x, m = lemma[names, t], w.n_seen[names]
            p_new = NEW_NAME_P[m]
            p_name = np.where(w.seen[names, x], (1 - p_new) / np.maximum(m, 1),
                              p_new * NAME_Q[x] / (1 - w.seen_q[names]))
            log_name[names, t - 1] = np.log(NAME_Q[x] if "copy" in ablate else p_name)
        context = w.rules(c)
        if "knowledge" in ablate:  # each table's mean row instead of the row the context picks
            context = np.where(context >= 0, (lang.rules.rule_start + lang.rules.contexts)[:, None], -1)
        rest[:, t - 1], pref[:, t - 1] = mixture(lang, context, lemma[:, t])
        w.advance(c, lemma[:, t])
    return -log_class, -(log_name + _log_word_given_class(lang, rows, rest, pref, "topic" in ablate))


def _word_lik(lang: Language, tok: np.ndarray, rest: np.ndarray, pref: np.ndarray, topics: int | None = None):
    """p(tok | its class, topic k) for flat tokens with their mixture (see mixture): [topics, m].

    Names are not word-table draws (the entity rule scores them): their likelihood here is 1.
    """
    lik = rest * lang.token_topic_p.T[:topics or lang.rules.n_topics, tok] + pref
    lik[:, lang.tok_class[tok] == NAME] = 1.0
    return lik


def _doc_start(rows: np.ndarray) -> np.ndarray:
    """Index of the <doc> that opens the document each position belongs to: [n, T + 1]."""
    idx = np.where(rows == BOS, np.arange(rows.shape[1]), 0)
    return np.maximum.accumulate(idx, axis=1)


def _log_word_given_class(lang: Language, rows, rest, pref, ignore_topic: bool) -> np.ndarray:
    """log p(token | its class, earlier tokens), the topic marginalised over each document: [n, T].

    Only adjectives, nouns and verbs depend on the topic. At those positions, with S_i the summed
    log-likelihood per topic of the document's topic words up to and including position i (plus
    the log prior of topic k), Bayes' rule gives log p(x_i | x_<i) = logsumexp_k S_i - logsumexp_k S_{i-1}.
    """
    n, length = rows.shape
    tok = rows[:, 1:]
    # words of other classes have the same probability under every topic: read it off topic 0
    out = np.log(_word_lik(lang, tok.ravel(), rest.ravel(), pref.ravel(), topics=1)[0]).reshape(n, length - 1)
    r, t = np.nonzero(np.isin(lang.tok_class[tok], TOPIC_CLASSES))
    loglik = np.log(_word_lik(lang, tok[r, t], rest[r, t], pref[r, t]))  # [n_topics, m], in row-major order
    prior = lang.rules.topic_prior
    if ignore_topic:
        out[r, t] = np.log(prior @ np.exp(loglik))
        return out
    total = np.cumsum(loglik, axis=1)
    doc = r * length + _doc_start(rows)[r, t + 1]        # which document each topic word belongs to
    first = np.concatenate([[True], doc[1:] != doc[:-1]])
    first_idx = np.maximum.accumulate(np.where(first, np.arange(doc.size), 0))
    before_doc = np.where(first_idx > 0, total[:, first_idx - 1], 0.0)
    s_now = total - before_doc
    if not lang.rules.uniform_topics:  # a uniform prior cancels: version 2 adds nothing
        s_now = s_now + np.log(prior)[:, None]
    out[r, t] = _logsumexp(s_now) - _logsumexp(s_now - loglik)
    return out


def _logsumexp(x: np.ndarray) -> np.ndarray:
    """log sum_k exp(x[k]) over the first axis."""
    top = x.max(0)
    return np.log(np.exp(x - top).sum(0)) + top


def next_distribution(lang: Language, rows: np.ndarray) -> np.ndarray:
    """p(next token = v | the whole row) for every v: [n, VOCAB_SIZE]; rows start with <doc>."""
    n, length = rows.shape
    w = Walker(n, lang.rules)
    rest, pref = np.zeros((n, length - 1)), np.zeros((n, length - 1))
    for t in range(1, length):
        rest[:, t - 1], pref[:, t - 1] = mixture(lang, w.rules(lang.tok_class[rows[:, t]]), lang.tok_lemma[rows[:, t]])
        w.advance(lang.tok_class[rows[:, t]], lang.tok_lemma[rows[:, t]])
    r, t = np.nonzero(np.arange(1, length) > _doc_start(rows)[:, -1:])  # the current document
    s = np.tile(np.log(lang.rules.topic_prior), (n, 1))  # log prior + log-likelihood of the document so far
    np.add.at(s, r, np.log(_word_lik(lang, rows[r, t + 1], rest[r, t], pref[r, t])).T)
    post = np.exp(s - s.max(1, keepdims=True))
    post /= post.sum(1, keepdims=True)
    topic_part = post @ lang.token_topic_p.T  # p(v | class of v), topic marginalised: [n, VOCAB]
    rest, pref = mixture(lang, w.rules(lang.tok_class[None, :]), lang.tok_lemma)  # every candidate: [n, VOCAB]
    within = rest * topic_part + pref
    p_new = NEW_NAME_P[w.n_seen][:, None]
    names = slice(CLASS_START[NAME], CLASS_START[NAME] + N_NAMES)
    within[:, names] = np.where(w.seen, (1 - p_new) / np.maximum(w.n_seen, 1)[:, None],
                                p_new * NAME_Q / (1 - w.seen_q)[:, None])
    return lang.class_p[w.key()][:, lang.tok_class] * within
