"""Which skill of the synthetic language decides each part of each token: the labels behind `cl.loss_by_skill`.

Every token's -log p splits exactly into two parts (`synthetic_scoring.score_parts`): its class
(grammar: which kind of word comes next) and the word given its class. Each part of each position
gets one skill. A label depends only on the context and, for the word part, on the token's class,
never on the word itself: so for every skill the expected loss of any model is at least the
floor's (the Kullback-Leibler divergence of the distributions it scores is never negative), and a
skill's excess is what the model has still to learn there.

Class part, by the grammar state before the token:
  document ends         a sentence start where the document may end (<doc> or a new sentence)
  agreement             after a subject: a verb may come, and its number is the subject's
  nesting               after a predicate or object: a clause may close, with its own closer . , )
  grammar               every other position (determiner, adjective or noun, new name...)
Word part, by the context and the class of the token:
  knowledge: <rule>     a content word or preposition where a preference rule applies (the first
                        applicable in KNOWLEDGE_ORDER); its unit is the rule's table row, one fact
  topic words           an adjective, noun or verb no rule governs: the document's hidden topic
  names: first entity   a name before any entity of the document: which new name
  names: new or copied  a name once entities exist: copy one from the context, or a new one
  function words        determiners, adverbs, prepositions no rule governs (Zipfian choices)
"""
from __future__ import annotations

import numpy as np

from cot_lab.data.synthetic_language import Language
from cot_lab.data.synthetic_rules import (
    MAX_DOC_TOKENS, MIN_SENTENCES, NAME, O_END, O_POST, PRED, RULES, S_POST, SUBJ, TOPIC_CLASSES,
    V_POST
)
from cot_lab.data.synthetic_walker import Walker

CLASS_SKILLS = ("grammar", "agreement", "nesting", "document ends")
KNOWLEDGE_ORDER = (1, 2, 0, 3)  # object facts first: where two rules apply, the one with the most rows names it
WORD_SKILLS = ("function words", "topic words", "names: first entity", "names: new or copied") + tuple(
    f"knowledge: {RULES[j]}" for j in KNOWLEDGE_ORDER)
SKILLS = CLASS_SKILLS + WORD_SKILLS
_GRAMMAR, _AGREEMENT, _NESTING, _DOC_END = range(4)
_FUNCTION, _TOPIC, _NAME_FIRST, _NAME_MAYBE_COPY = range(len(CLASS_SKILLS), len(CLASS_SKILLS) + 4)
_KNOWLEDGE = len(CLASS_SKILLS) + 4  # + position in KNOWLEDGE_ORDER


def skill_labels(lang: Language, rows: np.ndarray):
    """(class skill, word skill, unit) of positions 1..T of rows [n, T + 1]: int64 [n, T] each.

    Skills index SKILLS; unit is the knowledge rule's table row (0-based within its table) where
    the word skill is a knowledge rule, else -1.
    """
    n, length = rows.shape
    cls, lemma = lang.tok_class[rows], lang.tok_lemma[rows]
    class_skill = np.zeros((n, length - 1), np.int64)
    word_skill = np.zeros((n, length - 1), np.int64)
    unit = np.full((n, length - 1), -1, np.int64)
    start = lang.rules.rule_start
    w = Walker(n, lang.rules)
    for t in range(1, length):
        c = cls[:, t]
        may_end = ((w.state == SUBJ) & (w.depth == 0) & (w.sentences > 0)
                   & ((w.sentences >= MIN_SENTENCES) | (w.doc_len >= MAX_DOC_TOKENS)))
        class_skill[:, t - 1] = np.select(
            [may_end, np.isin(w.state, (S_POST, PRED)), np.isin(w.state, (V_POST, O_POST, O_END))],
            [_DOC_END, _AGREEMENT, _NESTING], _GRAMMAR)
        skill = np.where(np.isin(c, TOPIC_CLASSES), _TOPIC, _FUNCTION)
        skill = np.where(c == NAME, np.where(w.n_seen > 0, _NAME_MAYBE_COPY, _NAME_FIRST), skill)
        context = w.rules(c)  # [len(RULES), n]
        row = np.full(n, -1, np.int64)
        for k, j in reversed(list(enumerate(KNOWLEDGE_ORDER))):  # reversed: the first in the order wins
            applies = context[j] >= 0
            skill = np.where(applies, _KNOWLEDGE + k, skill)
            row = np.where(applies, context[j] - start[j], row)
        word_skill[:, t - 1], unit[:, t - 1] = skill, row
        w.advance(c, lemma[:, t])
    return class_skill, word_skill, unit
