"""`SyntheticCorpus`: an unlimited, seeded stream of a generated language whose entropy floor is known.

The language (defined in `synthetic_grammar`) has 512 token ids: function words, Zipfian
pseudo-words whose choice depends on a hidden document topic, names that are introduced and then
re-mentioned, and nested clauses with number agreement. Its generator knows p(token | all earlier
tokens of the row) exactly, so the mean of -log p over a long sample is the loss no model can beat
(`entropy`, nats/token, with its standard error).

Rows: each row holds seq_len + 1 tokens, starts at a document's `<doc>` token, and continues
with whole documents (the last one cut off), so the floor is well defined for every position.
Rows come in chunks from numpy SeedSequence streams keyed by (language_seed, seed, split, chunk):
the train stream for a seed is the same whatever the batch size, and validation rows come from
a different stream, so they never coincide with training rows.
"""
from __future__ import annotations

import json
import math
from typing import Iterator

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.core.io import write_json
from cot_lab.core.paths import subdir
from cot_lab.data import synthetic_grammar as grammar
from cot_lab.data import synthetic_skills as skills
from cot_lab.data.synthetic_shift import parse_shift
from cot_lab.data.base import Corpus

CHUNK_TOKENS = 2**19     # rows are generated about this many tokens at a time (bounded memory)
ENTROPY_TOKENS = 2**19   # scored validation tokens behind each entropy estimate
MAX_SEQ_LEN = 2**16
TRAIN, VAL = 0, 1        # SeedSequence spawn keys of the two splits


def _as_rows(name: str, rows, min_len: int) -> np.ndarray:
    """rows as an int64 numpy array [n, T + 1] of valid ids starting with <doc>, else ValueError."""
    if isinstance(rows, torch.Tensor):
        rows = rows.detach().cpu().numpy()
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] < min_len or rows.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 2-D integer array [n >= 1, length >= {min_len}], got "
                         f"shape {rows.shape} dtype {rows.dtype}; e.g. corpus.val_batch(8, 128)")
    if rows.min() < 0 or rows.max() >= grammar.VOCAB_SIZE:
        raise ValueError(f"{name} holds ids outside [0, {grammar.VOCAB_SIZE}): min {rows.min()}, max {rows.max()}")
    if (rows[:, 0] != grammar.BOS).any():
        raise ValueError(f"{name}: every row must start with the <doc> token id {grammar.BOS}, as rows "
                         "from train_batches/val_batch do")
    return rows.astype(np.int64)


class SyntheticCorpus(Corpus):
    """A generated language with an exact entropy floor; its tables are fixed by `language_seed`.

    shift: None, or a controlled shift of the same language (a preset such as 'rare-topics' or
    'deep-nesting', or a `synthetic_shift.ShiftSpec`): rows come from the shifted distribution and
    `entropy` is its exact floor.
    """

    DEFAULT_SEQ_LEN = 128

    def __init__(self, language_seed: int = 0, version: int = 2, shift=None):
        self.language_seed = validate.integer("language_seed", language_seed, low=0, hint="e.g. 0")
        if version not in grammar.VERSIONS or isinstance(version, bool):
            raise ValueError(f"version={version!r} is not a version of the language; use one of "
                             f"{sorted(grammar.VERSIONS)} (3: many small skills with Zipfian frequencies)")
        self.version = version
        self.shift = parse_shift(shift)
        self.name = "synthetic" if version == 2 else f"synthetic-v{version}"  # what load_corpus takes back
        self.name += f":{self.shift.label}" if self.shift else ""
        rules = self.shift.apply(grammar.VERSIONS[version]) if self.shift else None
        self.language = grammar.Language(self.language_seed, version, rules)
        self.vocab_size = grammar.VOCAB_SIZE
        self.fingerprint = self.language.fingerprint()
        self._entropies: dict[int, tuple[float, float]] = {}
        self._val: tuple[tuple[int, int], torch.Tensor] | None = None
        self._unshifted_fingerprint = None if self.shift else self.fingerprint
        self._ids: dict[str, int] | None = None  # word -> id, built on the first encode

    @property
    def unshifted_fingerprint(self) -> str:
        """The fingerprint of this language without its shift: a model trained on it may be tested on the shift."""
        if self._unshifted_fingerprint is None:
            self._unshifted_fingerprint = grammar.Language(self.language_seed, self.version).fingerprint()
        return self._unshifted_fingerprint

    # ------------------------------------------------------------ rows
    @staticmethod
    def rows_per_chunk(seq_len: int) -> int:
        """Rows generated together for this seq_len (a fixed function of seq_len alone)."""
        return max(1, CHUNK_TOKENS // (seq_len + 1))

    def _chunk(self, split: int, seed: int, seq_len: int, index: int, with_logp: bool = False):
        """Rows [rows_per_chunk, seq_len + 1] of chunk `index` of a stream (plus log-probs if asked)."""
        seq = np.random.SeedSequence([self.language_seed, seed], spawn_key=(split, index))
        tokens, logp, logp_known = grammar.sample(self.language, self.rows_per_chunk(seq_len), seq_len + 1,
                                                  np.random.default_rng(seq))
        return (tokens, logp, logp_known) if with_logp else tokens

    def _rows(self, split: int, seed: int, seq_len: int, n_rows: int | None = None) -> Iterator[np.ndarray]:
        """Consecutive chunks of a stream, the last cut so that n_rows rows come out (None: endless)."""
        index, left = 0, n_rows
        while left is None or left > 0:
            rows = self._chunk(split, seed, seq_len, index)
            if left is not None:
                rows, left = rows[:left], left - min(left, len(rows))
            yield rows
            index += 1

    def train_batches(self, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
        """Endless int64 batches [batch_size, seq_len + 1] of training rows; rows do not depend on batch_size."""
        batch_size = validate.integer("batch_size", batch_size, hint="e.g. 16")
        seq_len = validate.integer("seq_len", seq_len, high=MAX_SEQ_LEN, hint="e.g. 128")
        seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
        return self._batches(batch_size, seq_len, seed)

    def _batches(self, batch_size: int, seq_len: int, seed: int) -> Iterator[torch.Tensor]:
        chunks = self._rows(TRAIN, seed, seq_len)
        buffer = np.zeros((0, seq_len + 1), np.int64)
        while True:
            while len(buffer) < batch_size:
                buffer = np.concatenate([buffer, next(chunks)])
            yield torch.from_numpy(buffer[:batch_size].copy())
            buffer = buffer[batch_size:]

    def val_batch(self, n_sequences: int, seq_len: int) -> torch.Tensor:
        """The first n_sequences rows of the validation stream: int64 [n_sequences, seq_len + 1]."""
        n_sequences = validate.integer("n_sequences", n_sequences, hint="e.g. 64")
        seq_len = validate.integer("seq_len", seq_len, high=MAX_SEQ_LEN, hint="e.g. 128")
        if self._val is None or self._val[0] != (n_sequences, seq_len):  # keep the last one: evals repeat
            rows = np.concatenate(list(self._rows(VAL, 0, seq_len, n_sequences)))
            self._val = ((n_sequences, seq_len), torch.from_numpy(rows))
        return self._val[1].clone()

    # ------------------------------------------------------------ exact probabilities
    def score(self, rows) -> np.ndarray:
        """-log p(token_t | tokens_<t of its row) in nats for t = 1..T of rows [n, T + 1]: float64 [n, T].

        Computed from the tokens alone; a token the language cannot produce there scores inf.
        """
        rows = _as_rows("rows", rows, 2)
        step = self.rows_per_chunk(rows.shape[1] - 1)
        with np.errstate(divide="ignore"):
            return np.concatenate([grammar.score(self.language, rows[i: i + step])
                                   for i in range(0, len(rows), step)])

    def next_token_distribution(self, prefix_rows) -> np.ndarray:
        """p(next token = v | the whole prefix) for every id v: float64 [n, vocab_size]; rows start with <doc>."""
        rows = _as_rows("prefix_rows", prefix_rows, 1)
        step = 1024  # the candidates' preference rows are [4, step, vocab_size]: bound the memory
        with np.errstate(divide="ignore"):  # a shift's topics outside its set have log prior -inf
            return np.concatenate([grammar.next_distribution(self.language, rows[i: i + step])
                                   for i in range(0, len(rows), step)])

    def skill_split(self, rows) -> dict:
        """The exact floor of rows [n, T + 1] in its two parts per token, and which skill each part belongs to.

        Keys: skills (names, see `synthetic_skills`), floor_class and floor_word (float64 [n, T],
        nats; they sum to score(rows)), class_skill and word_skill (int64 [n, T] into skills),
        unit (int64 [n, T]: the knowledge rule's table row, else -1), token_class (int64
        [vocab_size]: the class each token id belongs to; a class is a block of ids).
        """
        rows = _as_rows("rows", rows, 2)
        step = self.rows_per_chunk(rows.shape[1] - 1)
        parts = []
        with np.errstate(divide="ignore"):
            for i in range(0, len(rows), step):
                chunk = rows[i: i + step]
                parts.append(grammar.score_parts(self.language, chunk) + skills.skill_labels(self.language, chunk))
        floor_class, floor_word, class_skill, word_skill, unit = (np.concatenate(a) for a in zip(*parts))
        return dict(skills=skills.skill_names(self.language.rules), floor_class=floor_class, floor_word=floor_word, class_skill=class_skill,
                    word_skill=word_skill, unit=unit, token_class=self.language.tok_class.copy())

    # ------------------------------------------------------------ the entropy floor
    @property
    def entropy(self) -> float:
        """The entropy floor in nats/token at DEFAULT_SEQ_LEN (computed once, then cached on disk)."""
        return self.entropy_for(self.DEFAULT_SEQ_LEN)[0]

    @property
    def entropy_se(self) -> float:
        """Standard error of `entropy`, nats/token."""
        return self.entropy_for(self.DEFAULT_SEQ_LEN)[1]

    def entropy_for(self, seq_len: int) -> tuple[float, float]:
        """(mean, standard error) of the exact loss per token, nats, over rows of seq_len + 1 tokens.

        The mean of score() over ENTROPY_TOKENS validation tokens; rows are independent, so the
        standard error is that of the per-row means.
        """
        seq_len = validate.integer("seq_len", seq_len, high=MAX_SEQ_LEN, hint="e.g. 128")
        if seq_len in self._entropies:
            return self._entropies[seq_len]
        path = subdir("synthetic") / "entropy.json"
        key = f"{self.fingerprint}:{seq_len}:{ENTROPY_TOKENS}"
        try:
            cache = json.loads(path.read_text())
        except (OSError, ValueError):
            cache = {}
        if key not in cache:
            n_rows = max(2, math.ceil(ENTROPY_TOKENS / seq_len))
            row_means = np.concatenate([self.score(r).mean(1) for r in self._rows(VAL, 0, seq_len, n_rows)])
            cache[key] = {"nats": float(row_means.mean()), "se": float(row_means.std(ddof=1) / math.sqrt(n_rows)),
                          "tokens": n_rows * seq_len}
            write_json(path, cache)  # atomic: another notebook never reads half a file
        self._entropies[seq_len] = (cache[key]["nats"], cache[key]["se"])
        return self._entropies[seq_len]

    def layer_report(self, seq_len: int = DEFAULT_SEQ_LEN, train_tokens: int = 2_000_000) -> dict[str, float]:
        """Loss in nats/token of the exact model and of models blind to one layer, on validation rows.

        Keys: floor; topic_known (an oracle told the topic); no_topic, no_knowledge, no_copy,
        no_agreement, no_nesting (that layer ignored, everything else exact); bigram, unigram (count models
        fitted on `train_tokens` training tokens, add-alpha smoothing tuned on these rows).
        """
        seq_len = validate.integer("seq_len", seq_len, high=MAX_SEQ_LEN, hint="e.g. 128")
        train_tokens = validate.integer("train_tokens", train_tokens, low=1000, hint="e.g. 2_000_000")
        n_rows = max(2, math.ceil(ENTROPY_TOKENS / seq_len))
        n_chunks = math.ceil(n_rows / self.rows_per_chunk(seq_len))
        chunks = [self._chunk(VAL, 0, seq_len, i, with_logp=True) for i in range(n_chunks)]
        rows, logp, logp_known = (np.concatenate(a)[:n_rows] for a in zip(*chunks))
        counts = np.bincount(self.language.tok_class[rows[:, 1:]].ravel(), minlength=grammar.N_CLASSES)
        shares = {"verb": counts[[grammar.VERB_SG, grammar.VERB_PL]] / counts[[grammar.VERB_SG, grammar.VERB_PL]].sum(),
                  "closer": counts[grammar.CLOSER] / counts[grammar.CLOSER].sum()}
        report = {"floor": float(-logp.mean()), "topic_known": float(-logp_known.mean())}
        for layer in grammar.ABLATIONS:
            report[f"no_{layer}"] = float(grammar.score(self.language, rows, (layer,), shares).mean())
        train = np.concatenate(list(self._rows(TRAIN, 0, seq_len, math.ceil(train_tokens / seq_len))))
        report["bigram"], report["unigram"] = ngram_cross_entropy(train, rows, self.vocab_size)
        return report

    # ------------------------------------------------------------ for people
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` written in the language (whitespace-separated words, as `decode` writes them)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string of the language's words (as corpus.decode writes them); got "
                             f"{type(text).__name__}")
        if self._ids is None:
            self._ids = {w: i for i, w in enumerate(self.language.words)}
        ids, unknown = [], []
        for word in text.split():
            (ids.append(self._ids[word]) if word in self._ids else unknown.append(word))
        if unknown:
            raise ValueError(f"text holds {len(unknown)} word(s) the language does not have, e.g. {unknown[:3]}: write "
                             "text in the language's own words, e.g. corpus.decode(corpus.val_batch(1, 32)[0])")
        return ids

    def decode(self, ids) -> str:
        """Readable text for token ids; each document starts on a new line with <doc>."""
        ids = np.asarray(ids.detach().cpu() if isinstance(ids, torch.Tensor) else ids).ravel()
        if ids.size and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids must be integer token ids in [0, {self.vocab_size}), got {ids[:8]}...")
        return " ".join(self.language.words[i] for i in ids).replace(" <doc>", "\n<doc>")

    def describe(self) -> str:
        """A few lines on what the language is made of, for notebooks."""
        rules = self.language.rules
        lines = [
            f"Synthetic language version {self.version} (seed {self.language_seed}, fingerprint {self.fingerprint}): "
            f"{self.vocab_size} token ids, documents of ~30-300 tokens separated by <doc>.",
            "Each layer is a step a bigger model can climb:",
            "  1. Zipfian words: every word class draws its words with probability ~ 1/rank.",
            "  2. Local grammar and word pairs: determiner -> adjectives -> noun -> verb -> object;"
            " an adjective prefers a few nouns, a verb a few prepositions.",
            "  3. Agreement: 'a zorn blicks' / 'some zorns blick', even across clauses and brackets.",
            f"  4. Topic: each document has one of {rules.n_topics} hidden topics that shift which"
            " adjectives, nouns and verbs appear; infer it from the document so far"
            + ("." if rules.uniform_topics else "; topics are drawn with Zipf frequencies (1/rank)."),
        ]
        if rules.version == grammar.VERSION:
            lines.append("  5. Knowledge: every noun and name has favourite verbs, every verb and preposition"
                         " favourite objects: tables to memorise, the deciding word several tokens back.")
        else:
            pairs = int(rules.contexts[:3].sum())
            lines.append(f"  5. Word pairs: every adjective, noun and verb leans towards {rules.pref_size[0]} favourites"
                         f" of the token before it, one table row per previous token ({pairs:,} rows, the hundreds in"
                         " use each as frequent as its token): many small facts, the frequent ones learned first."
                         " Subjects also have favourite verbs and verbs favourite objects, the deciding word"
                         " several tokens back.")
        lines += [
            "  6. Entities: names are introduced once and re-mentioned later: copy them from context.",
            "  7. Nesting: relative clauses end with ',', brackets with ')', sentences with '.'.",
            "The generator knows every next-token probability, so corpus.entropy is the exact"
            " loss floor (nats/token) that no model can beat.",
        ]
        if self.shift:
            lines.append(self.shift.describe(grammar.VERSIONS[self.version]))
        return "\n".join(lines)


def ngram_cross_entropy(train: np.ndarray, val: np.ndarray, vocab_size: int) -> tuple[float, float]:
    """(bigram, unigram) cross-entropy in nats/token on val rows[:, 1:] of count models fitted on train rows."""
    uni = np.bincount(train[:, 1:].ravel(), minlength=vocab_size) + 0.5
    uni /= uni.sum()
    pairs = np.bincount((train[:, :-1] * vocab_size + train[:, 1:]).ravel(), minlength=vocab_size**2)
    pairs = pairs.reshape(vocab_size, vocab_size).astype(float)
    prev, nxt = val[:, :-1], val[:, 1:]
    seen, context = pairs[prev, nxt], pairs.sum(1)[prev]
    bigram = min(  # additive smoothing towards the unigram, strength tuned on val: flatters the bigram
        float(-np.log((seen + a * uni[nxt]) / (context + a)).mean())
        for a in (1.0, 3.0, 10.0, 30.0, 100.0))
    return bigram, float(-np.log(uni[nxt]).mean())

