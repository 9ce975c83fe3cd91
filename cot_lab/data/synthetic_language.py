"""`Language`: the tables of one synthetic language, drawn from its seed (words, class, topic and preference tables).

`mixture` reads the preference tables the same way for the sampler and the scorer.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from cot_lab.data.synthetic_rules import (
    ADJ, BASE, CLASS_SIZE, CLASS_START, END_P, FIXED_WORDS, GENERAL_FRACTION, LMAX, MAX_DEPTH,
    MAX_DOC_TOKENS, MIN_SENTENCES, NAME, NAME_ZIPF_EXPONENT, NEW_NAME_P, NEXT, NOUN_PL, NOUN_SG, N_ADJ,
    N_CLASSES, N_NAMES, N_NOUN, N_TOPICS, N_VERB, RULES, RULE_WEIGHT, STATES, TOPIC_BOOST, VERB_PL, VERB_SG, VERSION, VERSIONS, VOCAB_SIZE, ZIPF_EXPONENT, class_probs,
    table_key, zipf
)


def _pseudo_words(rng: np.random.Generator, count: int, taken: set, n_syll: tuple, suffix=("",)) -> list[str]:
    onsets = "b bl br d dr f fl g gl gr k kl kr l m n p pl pr r s sk sl sn st t tr v z sh th ch".split()
    vowels = "a e i o u ai ee oo ou".split()
    codas = ["", "", "n", "m", "r", "l", "k", "p", "t", "sk", "nd", "rt", "x", "ng"]
    words = []
    while len(words) < count:
        k = int(rng.choice(n_syll))
        w = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(k)) + rng.choice(codas)
        w += rng.choice(suffix)
        forms = {w, w + "s"}
        if not forms & taken:
            taken |= forms
            words.append(w)
    return words


class Language:
    """All tables of one language, fixed by `seed` and `version` (2 or 3, see VERSIONS): words, class table,
    topic tables, preference tables. `rules` replaces the version's Rules (a shifted copy, see
    `synthetic_shift`); the random tables are drawn the same whatever its topic prior and grammar weights."""

    def __init__(self, seed: int, version: int = 2, rules=None):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(7,)))
        self.seed, self.version = seed, version
        self.rules = rules = VERSIONS[version] if rules is None else rules
        n_topics = rules.n_topics
        # words: English function words, pseudo-word content words, capitalised names
        taken = {w for ws in FIXED_WORDS.values() for w in ws}
        nouns = _pseudo_words(rng, N_NOUN, taken, (1, 1, 2))
        verbs = _pseudo_words(rng, N_VERB, taken, (1, 2))
        adjs = _pseudo_words(rng, N_ADJ, taken, (1, 2), suffix=("y", "ic", "ous", "ish", "al"))
        names = [w.capitalize() for w in _pseudo_words(rng, N_NAMES, taken, (1, 2), suffix=("a", "o", "i", "ie"))]
        content = {NAME: names, ADJ: adjs, NOUN_SG: nouns, NOUN_PL: [w + "s" for w in nouns],
                   VERB_SG: [w + "s" for w in verbs], VERB_PL: verbs}
        self.words = tuple(w for c in range(N_CLASSES) for w in FIXED_WORDS.get(c, content.get(c)))
        assert len(self.words) == VOCAB_SIZE and len(set(self.words)) == VOCAB_SIZE
        self.tok_class = np.repeat(np.arange(N_CLASSES), CLASS_SIZE)
        self.tok_lemma = np.arange(VOCAB_SIZE) - CLASS_START[self.tok_class]

        # class table: one row per register combination, plus its cumulative form for sampling
        combos = [(s, k, f, a, b, h) for s in range(len(STATES)) for k in range(3) for f in (0, 1)
                  for a in range(3) for b in (0, 1) for h in range(3)]
        self.class_p = np.array([class_probs(*c, base=rules.base) for c in combos])
        assert all(table_key(*c) == i for i, c in enumerate(combos))
        cum = np.cumsum(self.class_p, axis=1)
        last = (self.class_p > 0)[:, ::-1].argmax(1)          # from the last possible class on, cum = 1
        self.class_cum = np.where(np.arange(N_CLASSES) >= N_CLASSES - 1 - last[:, None], 1.0, cum)

        # within-class word tables [N_CLASSES, N_TOPICS, max class size]; non-topic classes repeat over topics
        self.word_p = np.zeros((N_CLASSES, n_topics, LMAX))
        for c in range(N_CLASSES):
            self.word_p[c, :, : CLASS_SIZE[c]] = zipf(CLASS_SIZE[c], ZIPF_EXPONENT)
        self.word_p[NAME, :, :N_NAMES] = zipf(N_NAMES, NAME_ZIPF_EXPONENT)
        for classes, n in (((ADJ,), N_ADJ), ((NOUN_SG, NOUN_PL), N_NOUN), ((VERB_SG, VERB_PL), N_VERB)):
            n_general = int(round(GENERAL_FRACTION * n))
            home = np.full(n, -1)
            home[n_general:] = rng.permutation(np.arange(n - n_general) % n_topics)
            boost = np.where(home[None, :] == np.arange(n_topics)[:, None], rules.topic_boost, 1.0)
            p = zipf(n, ZIPF_EXPONENT)[None, :] * boost
            for c in classes:
                self.word_p[c, :, :n] = p / p.sum(1, keepdims=True)
        # preference tables, stacked: each row puts Zipf weights on PREF_SIZE favourites; after each
        # table, the mean of its rows (what a model that ignores the context would predict)
        starts, contexts = rules.rule_start, rules.contexts
        self.pref_p = np.zeros((starts[-1] + contexts[-1] + 1, LMAX))
        for start, rows, size, k in zip(starts, contexts, rules.targets, rules.pref_size):
            for r in range(rows):
                self.pref_p[start + r, rng.choice(size, k, replace=False)] = zipf(k, ZIPF_EXPONENT)
            self.pref_p[start + rows] = self.pref_p[start: start + rows].mean(0)
        # flattened cumulative tables for sampling: table id = class * N_TOPICS + topic, then preference rows
        sizes = np.concatenate([np.repeat(CLASS_SIZE, n_topics), np.repeat(rules.targets, contexts + 1)])
        tables = np.concatenate([self.word_p.reshape(-1, LMAX), self.pref_p])
        cum = np.where(np.arange(LMAX) >= sizes[:, None] - 1, 1.0, np.cumsum(tables, axis=1))
        self.cum_flat = (cum + np.arange(len(tables))[:, None]).ravel()
        # token-indexed view for the scorer: p(token | its class, topic k)
        self.token_topic_p = self.word_p[self.tok_class, :, self.tok_lemma]      # [VOCAB, n_topics]
        self.topic_cum = np.cumsum(rules.topic_prior)
        self.topic_cum[np.flatnonzero(rules.topic_prior)[-1]:] = 1.0  # no draw lands on a topic of prior 0

    def fingerprint(self) -> str:
        """First 16 hex digits of sha256 over the version, the parameters and every table."""
        params = dict(version=VERSION, seed=self.seed, base={STATES[s]: {str(k): v for k, v in b.items()}
                                                             for s, b in BASE.items()},
                      topics=N_TOPICS, boost=TOPIC_BOOST, general=GENERAL_FRACTION, zipf=ZIPF_EXPONENT,
                      name_zipf=NAME_ZIPF_EXPONENT, rules=RULES, rule_weight=RULE_WEIGHT.tolist(),
                      new_name=NEW_NAME_P.tolist(), depth=MAX_DEPTH, doc=(MIN_SENTENCES, END_P, MAX_DOC_TOKENS),
                      words=self.words)
        if self.rules.version != VERSION:  # version 2's fingerprint predates Rules and must not change
            params["rules"] = self.rules.describe()
        h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
        for a in (self.class_p, self.word_p, self.pref_p, NEXT):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]


def mixture(lang: Language, context: np.ndarray, lemma: np.ndarray):
    """(weight left to the topic table, preference-table probability of `lemma`) given rule rows [J, ...]."""
    weights = lang.rules.rule_weight.reshape(-1, *[1] * (context.ndim - 1)) * (context >= 0)
    return 1 - weights.sum(0), (weights * lang.pref_p[np.maximum(context, 0), lemma]).sum(0)
