"""`Walker`: the grammar registers of many rows of the synthetic language, advanced one token per step.

The grammar state is a deterministic function of the visible tokens, so the sampler and the
scorer share this one tracker.
"""
from __future__ import annotations

import numpy as np

from cot_lab.data.synthetic_rules import (
    BOS, BRACKET, COMMA, DET_ANY, DET_SG, DOT, LPAREN, MAX_DEPTH, MAX_DOC_TOKENS, MIN_SENTENCES, NAME,
    NAME_Q, NEXT, NOUN_PL, NOUN_SG, N_NAMES, N_NOUN, N_VERB, PREP, REL, RETURN, RPAREN, SUBJ, SUBJECT_ROLE,
    THAT, TOP, VERB_PL, VERB_SG, rule_rows, table_key
)


class Walker:
    """The grammar registers of n rows, advanced one token per step (shared by sampler and scorer).

    state: grammar state; np_num, np_agent: number (0 sg, 1 pl, 2 open) and identity of the noun
    phrase being built; num, agent: number and identity of the subject the next verb goes with;
    governor: the last verb or preposition; a stack of open clauses (kind, resume state, saved
    num and agent); per document: sentences ended, tokens since <doc>, names introduced (mask and
    their Zipf mass); the previous token's class and lemma.
    """

    def __init__(self, n: int, rules=None):
        self.n, self.rule_set = n, rules  # rules: the language version's Rules (None: version 2)
        self.rows = np.arange(n)
        self.state, self.np_num, self.num = (np.zeros(n, np.int64) for _ in range(3))
        self.np_agent, self.agent, self.governor = (np.zeros(n, np.int64) for _ in range(3))
        self.depth, self.kind = np.zeros(n, np.int64), np.zeros(n, np.int64)
        self.stack_state, self.stack_num, self.stack_agent, self.stack_kind = (
            np.zeros((n, MAX_DEPTH), np.int64) for _ in range(4))
        self.sentences, self.doc_len, self.n_seen = (np.zeros(n, np.int64) for _ in range(3))
        self.seen = np.zeros((n, N_NAMES), bool)
        self.seen_q = np.zeros(n)  # Zipf mass of the names already introduced
        self.prev_class = np.full(n, BOS)
        self.prev_lemma = np.zeros(n, np.int64)

    def reset(self, rows: np.ndarray) -> None:
        """Start a new document in the rows where `rows` is True (SUBJ, singular, no open clause)."""
        for reg in (self.state, self.np_num, self.num, self.np_agent, self.agent, self.governor, self.depth,
                    self.kind, self.sentences, self.doc_len, self.n_seen, self.seen_q, self.seen):
            reg[rows] = 0

    def key(self) -> np.ndarray:
        """Row of Language.class_p for each row's registers."""
        at_start = (self.state == SUBJ) & (self.depth == 0) & (self.sentences > 0)
        hazard = np.where(self.doc_len >= MAX_DOC_TOKENS, 2, (self.sentences >= MIN_SENTENCES).astype(np.int64))
        hazard = np.where(at_start, hazard, 0)
        return table_key(self.state, self.kind, (self.depth >= MAX_DEPTH).astype(np.int64),
                         self.np_num, self.num, hazard)

    def rules(self, cls: np.ndarray) -> np.ndarray:
        """rule_rows for the next token of class `cls` ([n], or [1, V] for every candidate: [J, n, V])."""
        regs = (self.state, self.prev_class, self.prev_lemma, self.governor, self.agent)
        return rule_rows(*(r[:, None] if np.ndim(cls) == 2 else r for r in regs), cls, self.rule_set)

    def advance(self, cls: np.ndarray, lemma: np.ndarray) -> None:
        """Update every register after each row emitted a token of class `cls`, lemma `lemma`."""
        nxt = NEXT[self.state, cls]
        nominal = (cls == NOUN_SG) | (cls == NOUN_PL) | (cls == NAME)
        self.np_num = np.where((cls >= DET_SG) & (cls <= DET_ANY), cls - DET_SG, self.np_num)
        self.np_num = np.where(nominal, (cls == NOUN_PL).astype(np.int64), self.np_num)
        self.np_agent = np.where(nominal, lemma + N_NOUN * (cls == NAME), self.np_agent)
        subject = nominal & SUBJECT_ROLE[self.state]
        self.num = np.where(subject, self.np_num, self.num)
        self.agent = np.where(subject, self.np_agent, self.agent)
        verb = (cls == VERB_SG) | (cls == VERB_PL)
        self.governor = np.where(verb, lemma, np.where(cls == PREP, N_VERB + lemma, self.governor))
        opened = np.flatnonzero((cls == THAT) | (cls == LPAREN))
        if opened.size:  # push: remember where to resume and whose number was in force
            d = self.depth[opened]
            kind = np.where(cls[opened] == THAT, REL, BRACKET)
            self.stack_state[opened, d] = RETURN[self.state[opened]]
            self.stack_num[opened, d] = self.num[opened]
            self.stack_agent[opened, d] = self.agent[opened]
            self.stack_kind[opened, d] = kind
            self.depth[opened] = d + 1
            self.kind[opened] = kind
            rel = opened[kind == REL]  # a relative clause's verb goes with the noun it follows
            self.num[rel], self.agent[rel] = self.np_num[rel], self.np_agent[rel]
        closed = np.flatnonzero((cls == COMMA) | (cls == RPAREN))
        if closed.size:  # pop
            d = self.depth[closed] - 1
            nxt[closed] = self.stack_state[closed, d]
            self.num[closed] = self.stack_num[closed, d]
            self.agent[closed] = self.stack_agent[closed, d]
            self.depth[closed] = d
            self.kind[closed] = np.where(d > 0, self.stack_kind[closed, np.maximum(d - 1, 0)], TOP)
        named = np.flatnonzero(cls == NAME)
        named = named[~self.seen[named, lemma[named]]]
        if named.size:  # a new entity
            self.seen[named, lemma[named]] = True
            self.n_seen[named] += 1
            self.seen_q[named] += NAME_Q[lemma[named]]
        self.sentences += cls == DOT
        self.doc_len += 1
        self.state = nxt
        self.prev_class, self.prev_lemma = cls, lemma
        bos = cls == BOS
        if bos.any():
            self.reset(bos)
