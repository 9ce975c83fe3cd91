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
  knowledge: <rules>    a content word or preposition where preference rules apply, named by the set
                        of rules (its word comes from their mixture with the topic's table); its
                        unit is the row of the first of them, one small fact
  topic words           an adjective, noun or verb no rule governs: the document's hidden topic
  names: first entity   a name before any entity of the document: which new name
  names: new or copied  a name once entities exist: copy one from the context, or a new one
  function words        determiners, adverbs, prepositions no rule governs (Zipfian choices)
"""
from __future__ import annotations

import numpy as np

from cot_lab.data.synthetic_language import Language
from cot_lab.data.synthetic_rules import (
    MAX_DOC_TOKENS, MIN_SENTENCES, NAME, O_END, O_POST, PRED, S_POST, SUBJ, TOPIC_CLASSES,
    V_POST
)
from cot_lab.data.synthetic_walker import Walker

CLASS_SKILLS = ("grammar", "agreement", "nesting", "document ends")
WORD_SKILLS = ("function words", "topic words", "names: first entity", "names: new or copied")
_GRAMMAR, _AGREEMENT, _NESTING, _DOC_END = range(4)
_FUNCTION, _TOPIC, _NAME_FIRST, _NAME_MAYBE_COPY = range(len(CLASS_SKILLS), len(CLASS_SKILLS) + 4)
_KNOWLEDGE = len(CLASS_SKILLS) + len(WORD_SKILLS)  # + the rule's index in the language's rules


def skill_names(rules) -> tuple:
    """The skills of a language version (its Rules), in the order skill_labels numbers them.

    A word where several preference rules apply comes from their mixture (and the topic's table):
    its skill names every rule that applies, "knowledge: a + b", numbered by the set (a bit per rule).
    """
    combos = tuple("knowledge: " + " + ".join(name for j, name in enumerate(rules.names) if mask >> j & 1)
                   for mask in range(1, 2 ** len(rules.names)))
    return CLASS_SKILLS + WORD_SKILLS + combos


def skill_labels(lang: Language, rows: np.ndarray):
    """(class skill, word skill, unit) of positions 1..T of rows [n, T + 1]: int64 [n, T] each.

    Skills index skill_names(lang.rules); unit is the first applicable rule's table row (0-based within its
    table) where the word skill is a knowledge skill, else -1.
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
        context = w.rules(c)  # [number of rules, n]
        applies = context >= 0
        mask = (applies << np.arange(len(context))[:, None]).sum(0)  # the set of rules that apply
        skill = np.where(mask > 0, _KNOWLEDGE + mask - 1, skill)
        first = applies.argmax(0)  # the unit: the row of the first rule that applies
        row = np.where(mask > 0, context[first, w.rows] - start[first], -1)
        word_skill[:, t - 1], unit[:, t - 1] = skill, row
        w.advance(c, lemma[:, t])
    return class_skill, word_skill, unit
