"""Generation of the synthetic language: the sampler knows each document's hidden topic.

It also returns the exact log-probabilities of what it drew, the topic marginalised by a running
posterior (what `synthetic_scoring.score` recomputes from the tokens alone) and with the topic known.
"""
from __future__ import annotations

import numpy as np

from cot_lab.data.synthetic_language import Language, mixture
from cot_lab.data.synthetic_rules import (
    BOS, CLASS_SIZE, CLASS_START, LMAX, NAME, NAME_Q, NEW_NAME_P, N_CLASSES
)
from cot_lab.data.synthetic_walker import Walker


def sample(lang: Language, n: int, length: int, rng: np.random.Generator):
    """n rows of `length` tokens starting with <doc>, their log p (nats) and log p with the topic known.

    The log-probabilities ([n, length - 1], positions 1..) are those of the generating process,
    with the hidden topic marginalised by a running posterior; `score` recomputes them from tokens.
    """
    tokens = np.zeros((n, length), np.int64)
    logp, logp_known = np.zeros((n, length - 1)), np.zeros((n, length - 1))
    rules = lang.rules
    w = Walker(n, rules)
    if rules.uniform_topics:  # version 2 draws its first topics this way: its rows must not change
        topic = rng.integers(rules.n_topics, size=n)
    else:
        topic = np.searchsorted(lang.topic_cum, rng.random(n), side="right")
    post = np.tile(rules.topic_prior, (n, 1))
    for t in range(1, length):
        key = w.key()
        u = rng.random((4, n))
        cls = (lang.class_cum[key] < u[0][:, None]).sum(1)
        # which table the word comes from: a preference rule's row, or the true topic's table
        rows = w.rules(cls)
        weights = rules.rule_weight[:, None] * (rows >= 0)
        branch = (np.cumsum(weights, axis=0) <= u[2]).sum(0)
        n_rules = len(rules.names)
        table = np.where(branch < n_rules,
                         N_CLASSES * rules.n_topics + rows[np.minimum(branch, n_rules - 1), w.rows],
                         cls * rules.n_topics + topic)
        lemma = np.searchsorted(lang.cum_flat, table + u[1], side="right") - table * LMAX
        lemma = np.minimum(lemma, CLASS_SIZE[cls] - 1)  # guards a rounding of table + u up to table + 1
        # p(lemma | class, topic k) for every k, the branch marginalised: [n, n_topics]
        rest, pref = mixture(lang, rows, lemma)
        lik = rest[:, None] * lang.word_p[cls, :, lemma] + pref[:, None]
        names = np.flatnonzero(cls == NAME)
        if names.size:
            lemma[names], p_name = _sample_names(w, names, u[2][names], u[3][names])
            lik[names] = p_name[:, None]
        p_class = lang.class_p[key, cls]
        p_word = (post * lik).sum(1)
        logp[:, t - 1] = np.log(p_class * p_word)
        logp_known[:, t - 1] = np.log(p_class * lik[w.rows, topic])
        post = post * lik / p_word[:, None]  # Bayes' rule; unchanged where lik does not depend on topic
        tokens[:, t] = CLASS_START[cls] + lemma
        w.advance(cls, lemma)
        new_doc = cls == BOS
        topic = np.where(new_doc, np.searchsorted(lang.topic_cum, u[3], side="right"), topic)
        post[new_doc] = rules.topic_prior
    return tokens, logp, logp_known


def _sample_names(w: Walker, rows, u_branch, u_pick):
    """Name lemmas for `rows` (new entity or re-mention) and their probability given the name class."""
    m = w.n_seen[rows]
    p_new = NEW_NAME_P[m]
    new = u_branch < p_new
    free = np.cumsum(NAME_Q * ~w.seen[rows], axis=1)
    fresh = (free < (u_pick * free[:, -1])[:, None]).sum(1)
    old = (np.cumsum(w.seen[rows], axis=1) <= np.floor(u_pick * m)[:, None]).sum(1)
    lemma = np.where(new, fresh, old)
    p = np.where(new, p_new * NAME_Q[lemma] / (1 - w.seen_q[rows]), (1 - p_new) / np.maximum(m, 1))
    return lemma, p
