"""The rules of the synthetic language: its vocabulary, parameters, grammar and preference rules.

Everything here is fixed (no seed): one block of token ids per word class, the probabilities of
each option of the grammar (BASE, one state per position in the rules below), the state machine
the visible tokens drive (NEXT, RETURN) and the preference rules whose tables `Language` draws.

    sentence  := clause "."                 (at a sentence start the document may end instead: <doc>)
    clause    := subject predicate
    subject   := (DET ADJ* NOUN | NAME) [ "that" predicate "," | "(" clause ")" ]
    predicate := ADV* VERB [ object | PREP object ]
    object    := (DET ADJ* NOUN | NAME) [ "that" predicate "," | "(" clause ")" ] [ PREP object ]

`synthetic_grammar` describes the layers these rules make; changing any value here changes the
language's fingerprint (and VERSION should be bumped with it).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

VERSION = "synthetic-language-v2"

# ---------------------------------------------------------------- vocabulary: one block of ids per class
CLASSES = ("bos", "dot", "comma", "lparen", "rparen", "that", "det_sg", "det_pl", "det_any",
           "adv", "prep", "name", "adj", "noun_sg", "noun_pl", "verb_sg", "verb_pl")
(BOS, DOT, COMMA, LPAREN, RPAREN, THAT, DET_SG, DET_PL, DET_ANY,
 ADV, PREP, NAME, ADJ, NOUN_SG, NOUN_PL, VERB_SG, VERB_PL) = range(len(CLASSES))
N_CLASSES = len(CLASSES)
FIXED_WORDS = {
    BOS: ["<doc>"], DOT: ["."], COMMA: [","], LPAREN: ["("], RPAREN: [")"], THAT: ["that"],
    DET_SG: ["a", "one", "each", "every"], DET_PL: ["some", "many", "two", "few"], DET_ANY: ["the", "my", "our"],
    ADV: ["often", "never", "still", "also", "soon", "rarely", "always", "again", "only", "even", "just", "quietly"],
    PREP: ["in", "on", "with", "by", "for", "from", "near", "under", "over", "about", "after", "to"],
}
N_NAMES, N_ADJ, N_NOUN, N_VERB = 64, 63, 112, 60  # 6 + 11 + 12 + 12 + 64 + 63 + 2*112 + 2*60 = 512 ids
CLASS_SIZE = np.array([len(FIXED_WORDS.get(c, ())) for c in range(N_CLASSES)])
CLASS_SIZE[[NAME, ADJ, NOUN_SG, NOUN_PL, VERB_SG, VERB_PL]] = [N_NAMES, N_ADJ, N_NOUN, N_NOUN, N_VERB, N_VERB]
CLASS_START = np.concatenate([[0], np.cumsum(CLASS_SIZE)[:-1]])
VOCAB_SIZE = int(CLASS_SIZE.sum())
TOPIC_CLASSES = (ADJ, NOUN_SG, NOUN_PL, VERB_SG, VERB_PL)
LMAX = int(CLASS_SIZE.max())

# ---------------------------------------------------------------- language parameters
N_TOPICS = 16
ZIPF_EXPONENT = 1.0        # word weight ~ 1/rank^s within a class
NAME_ZIPF_EXPONENT = 0.6   # flatter: which new name appears is hard to guess, a re-mention is easy to copy
GENERAL_FRACTION = 0.2     # the most frequent content words are shared by all topics
TOPIC_BOOST = 40.0         # a topic's own content words are this much likelier under it
PREF_SIZE = 5              # favourites per row of a preference table (Zipf-weighted)
NEW_NAME_P = np.array([1.0, 0.3, 0.2, 0.1, 0.0])  # p(a name slot introduces a new entity | entities so far)
MAX_DEPTH = 3              # open relative clauses + brackets
MIN_SENTENCES, END_P, MAX_DOC_TOKENS = 3, 0.1, 300  # a document ends at a sentence start

# ---------------------------------------------------------------- grammar: states and their class weights
STATES = ("subj", "s_det", "s_post", "pred", "v_post", "o_det", "o_post", "o_end", "pp")
SUBJ, S_DET, S_POST, PRED, V_POST, O_DET, O_POST, O_END, PP = range(len(STATES))
BASE = {  # "noun"/"verb" take the number in force, "close" the closer of the innermost open clause
    SUBJ: {DET_SG: .22, DET_PL: .18, DET_ANY: .32, NAME: .28},
    S_DET: {ADJ: .35, "noun": .65},
    S_POST: {THAT: .12, LPAREN: .05, ADV: .13, "verb": .70},
    PRED: {ADV: .15, "verb": .85},
    V_POST: {DET_SG: .1, DET_PL: .08, DET_ANY: .18, NAME: .19, PREP: .2, "close": .25},
    O_DET: {ADJ: .35, "noun": .65},
    O_POST: {THAT: .10, LPAREN: .04, PREP: .2, "close": .66},
    O_END: {PREP: .15, "close": .85},
    PP: {DET_SG: .18, DET_PL: .14, DET_ANY: .4, NAME: .28},
}
TOP, REL, BRACKET = range(3)                     # kinds of open clause, closed by . , )
CLOSER = np.array([DOT, COMMA, RPAREN])
ANY_NUMBER_SG_P = 0.6                           # "the"/"my"/"our" + singular noun
NEXT = np.full((len(STATES), N_CLASSES), -1)    # -1: pop the clause stack (a closer) or invalid
NEXT[SUBJ, [DET_SG, DET_PL, DET_ANY, NAME, BOS]] = [S_DET, S_DET, S_DET, S_POST, SUBJ]
NEXT[S_DET, [ADJ, NOUN_SG, NOUN_PL]] = [S_DET, S_POST, S_POST]
NEXT[S_POST, [THAT, LPAREN, ADV, VERB_SG, VERB_PL]] = [PRED, SUBJ, PRED, V_POST, V_POST]
NEXT[PRED, [ADV, VERB_SG, VERB_PL]] = [PRED, V_POST, V_POST]
NEXT[V_POST, [DET_SG, DET_PL, DET_ANY, NAME, PREP, DOT]] = [O_DET, O_DET, O_DET, O_POST, PP, SUBJ]
NEXT[O_DET, [ADJ, NOUN_SG, NOUN_PL]] = [O_DET, O_POST, O_POST]
NEXT[O_POST, [THAT, LPAREN, PREP, DOT]] = [PRED, SUBJ, PP, SUBJ]
NEXT[O_END, [PREP, DOT]] = [PP, SUBJ]
NEXT[PP, [DET_SG, DET_PL, DET_ANY, NAME]] = [O_DET, O_DET, O_DET, O_POST]
RETURN_TO = {S_POST: PRED, O_POST: O_END}      # where a clause opened after a noun phrase resumes
RETURN = np.array([RETURN_TO.get(s, -1) for s in range(len(STATES))])
SUBJECT_ROLE = np.isin(np.arange(len(STATES)), [SUBJ, S_DET])  # a noun here sets the verb's number

# ---------------------------------------------------------------- preference rules (word pairs, knowledge)
RULES = ("adjective -> noun", "verb/preposition -> object noun", "subject -> verb", "verb -> preposition")
RULE_WEIGHT = np.array([0.3, 0.5, 0.5, 0.5])      # mixture weight of the rule's row where it applies
N_PREP = len(FIXED_WORDS[PREP])
RULE_CONTEXTS = np.array([N_ADJ, N_VERB + N_PREP, N_NOUN + N_NAMES, N_VERB])  # rows per table
RULE_TARGETS = np.array([N_NOUN, N_NOUN, N_VERB, N_PREP])                    # lemmas per row
RULE_START = np.concatenate([[0], np.cumsum(RULE_CONTEXTS + 1)[:-1]])  # + 1: a context-blind mean row


def rule_rows(state, prev_class, prev_lemma, governor, agent, cls, rules: "Rules | None" = None) -> np.ndarray:
    """Preference-table row of each rule of the language version `rules` (None: version 2) for a token of
    class `cls` (-1 where the rule does not apply): [number of rules, ...]. governor: last verb lemma or
    N_VERB + preposition lemma; agent: the clause subject's noun lemma or N_NOUN + name lemma. Arguments
    broadcast."""
    rules = rules or V2
    return rules.rows(state, prev_class, prev_lemma, governor, agent, cls, rules.rule_start)


def _noun_verb(cls):
    return (cls == NOUN_SG) | (cls == NOUN_PL), (cls == VERB_SG) | (cls == VERB_PL)


def _v2_rows(state, prev_class, prev_lemma, governor, agent, cls, start) -> np.ndarray:
    """Version 2's rows, in RULES order."""
    noun, verb = _noun_verb(cls)
    after_verb = (prev_class == VERB_SG) | (prev_class == VERB_PL)
    return np.stack(np.broadcast_arrays(
        np.where(noun & (prev_class == ADJ), start[0] + np.minimum(prev_lemma, N_ADJ - 1), -1),
        np.where(noun & (state == O_DET), start[1] + governor, -1),
        np.where(verb, start[2] + agent, -1),
        np.where((cls == PREP) & after_verb, start[3] + np.minimum(prev_lemma, N_VERB - 1), -1)))


def class_probs(state: int, kind: int, full: bool, np_num: int, num: int, hazard: int, base=None) -> np.ndarray:
    """p(next token's class) given the grammar registers (see Walker); a [N_CLASSES] vector.
    base: a version's grammar weights (None: BASE, version 2)."""
    p = np.zeros(N_CLASSES)
    for what, w in (base or BASE)[state].items():
        if what in (THAT, LPAREN) and full:
            continue
        if what == "noun":  # np_num: 0 singular, 1 plural, 2 not fixed by the determiner
            sg = (1.0, 0.0, ANY_NUMBER_SG_P)[np_num]
            p[NOUN_SG] += w * sg
            p[NOUN_PL] += w * (1 - sg)
        elif what == "verb":
            p[VERB_PL if num else VERB_SG] += w
        elif what == "close":
            p[CLOSER[kind]] += w
        else:
            p[what] += w
    p /= p.sum()
    end = (0.0, END_P, 1.0)[hazard]
    p = p * (1 - end)
    p[BOS] += end
    return p


def table_key(state, kind, full, np_num, num, hazard):
    """Row of the precomputed class table for these registers (works on arrays)."""
    return ((((state * 3 + kind) * 2 + full) * 3 + np_num) * 2 + num) * 3 + hazard


def zipf(n: int, exponent: float) -> np.ndarray:
    """Probabilities proportional to 1/rank^exponent over n items."""
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return w / w.sum()


NAME_Q = zipf(N_NAMES, NAME_ZIPF_EXPONENT)  # which name a new entity gets, before excluding used ones


# ---------------------------------------------------------------- language versions
@dataclass(frozen=True, eq=False)
class Rules:
    """What differs between versions of the language; everything else above is shared.

    topic_prior: p(a document's topic), [n_topics]; names: the preference rules; contexts and
    targets: rows of each rule's table and lemmas per row; rule_weight: the mixture weight of each
    rule where it applies (those that can apply together sum to less than 1); pref_size:
    favourites per row of each rule's table; rows: the function that picks each rule's row
    (see rule_rows); base: the grammar's class weights.
    """

    version: str
    n_topics: int
    topic_prior: np.ndarray
    topic_boost: float
    names: tuple
    contexts: np.ndarray
    targets: np.ndarray
    rule_weight: np.ndarray
    pref_size: tuple
    rows: object = field(repr=False)
    base: dict = field(repr=False)

    @property
    def rule_start(self) -> np.ndarray:
        """First row of each rule's table in the stacked preference table (each table + 1 mean row)."""
        return np.concatenate([[0], np.cumsum(self.contexts + 1)[:-1]])

    @property
    def uniform_topics(self) -> bool:
        return bool(np.all(self.topic_prior == self.topic_prior[0]))

    def describe(self) -> dict:
        """The parameters as plain JSON values (they enter the fingerprint of versions after 2)."""
        return dict(version=self.version, n_topics=self.n_topics, topic_prior=self.topic_prior.tolist(),
                    topic_boost=self.topic_boost, names=list(self.names), contexts=self.contexts.tolist(),
                    targets=self.targets.tolist(), rule_weight=self.rule_weight.tolist(),
                    pref_size=list(self.pref_size),
                    base={STATES[s]: {str(k): v for k, v in b.items()} for s, b in self.base.items()})


V2 = Rules(VERSION, N_TOPICS, np.full(N_TOPICS, 1.0 / N_TOPICS), TOPIC_BOOST, RULES, RULE_CONTEXTS, RULE_TARGETS,
           RULE_WEIGHT, (PREF_SIZE,) * len(RULES), _v2_rows, BASE)


def _v3_rows(state, prev_class, prev_lemma, governor, agent, cls, start) -> np.ndarray:
    """Version 3's rows, in V3_RULES order: three word-pair tables keyed by the previous token id, then
    the subject's favourite verbs and the verb's (or preposition's) favourite objects."""
    noun, verb = _noun_verb(cls)
    prev_token = CLASS_START[prev_class] + prev_lemma
    return np.stack(np.broadcast_arrays(
        np.where(cls == ADJ, start[0] + prev_token, -1),
        np.where(noun, start[1] + prev_token, -1),
        np.where(verb, start[2] + prev_token, -1),
        np.where(verb, start[3] + agent, -1),
        np.where(noun & (state == O_DET), start[4] + governor, -1)))


# Version 3 spreads the learnable loss over many small skills whose frequencies are Zipfian, the
# picture under which a sum of skills, each learned in a jump, falls as a smooth power law (Michaud et
# al. 2023, "The Quantization Model of Neural Scaling"; Hutter 2021, "Learning Curve Theory"):
#   - word pairs: every adjective, noun and verb leans towards a few favourites of the token before it,
#     a table row per previous token (hundreds in use), each used as often as that token is followed
#     by its class; a row is learned once seen often enough, and a wider model holds more of them;
#   - the skills that need a circuit spanning many tokens weigh less: the subject's verbs and the
#     verb's objects get smaller mixture weights, names come half as often, and relative clauses and
#     brackets are rare (a pilot with them 4x as frequent had its seeds disagree on the clause stack:
#     one seed of three learned it at 1e11 FLOPs, the others not);
#   - topics are drawn with Zipf frequencies (1/rank), so a rare topic's words come late.
V3_RULES = ("previous word -> adjective", "previous word -> noun", "previous word -> verb", "subject -> verb",
            "verb/preposition -> object noun")
V3_BASE = {**BASE,
           SUBJ: {DET_SG: .25, DET_PL: .2, DET_ANY: .41, NAME: .14},
           S_POST: {THAT: .015, LPAREN: .005, ADV: .14, "verb": .84},
           V_POST: {DET_SG: .11, DET_PL: .09, DET_ANY: .21, NAME: .10, PREP: .22, "close": .27},
           O_POST: {THAT: .012, LPAREN: .005, PREP: .2, "close": .783},
           PP: {DET_SG: .21, DET_PL: .16, DET_ANY: .49, NAME: .14}}
V3 = Rules("synthetic-language-v3", N_TOPICS, zipf(N_TOPICS, 1.0), TOPIC_BOOST, V3_RULES,
           np.array([VOCAB_SIZE, VOCAB_SIZE, VOCAB_SIZE, N_NOUN + N_NAMES, N_VERB + N_PREP]),
           np.array([N_ADJ, N_NOUN, N_VERB, N_VERB, N_NOUN]), np.array([0.5, 0.5, 0.4, 0.2, 0.2]), (4, 4, 4, 5, 5),
           _v3_rows, V3_BASE)
VERSIONS = {2: V2, 3: V3}
