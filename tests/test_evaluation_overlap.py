"""Contamination: planting test documents into training data, and the GPT-3 13-gram detector's verdicts on them.

The planted documents are rows of the kit's synthetic language (token ids); the truth is contaminate()'s own
record, and the matched counts are checked against a brute-force scan that shares no code with the detector.
"""
import re

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.evaluation import Overlap, contaminate, ngram_overlap


@pytest.fixture(scope="module")
def synthetic_rows():
    """(train rows, validation rows): int64 token-id documents of 129 tokens from disjoint streams."""
    corpus = cl.load_corpus("synthetic-v3")
    train = next(corpus.train_batches(2000, 128, seed=0)).numpy()
    val = corpus.val_batch(400, 128).numpy()
    return train, val


def _brute_force_matches(train_docs, doc, n):
    """Matched n-gram positions of `doc`, by substring search in the training documents written out as text."""
    def text(tokens):
        return "," + ",".join(map(str, tokens)) + ","

    haystack = "|".join(text(t) for t in train_docs)
    return sum(text(doc[i:i + n]) in haystack for i in range(len(doc) - n + 1))


def test_a_hand_checked_case_of_words():
    train = ["a b c d e f g"]
    test = ["x a b c d y", "b c d e", "q r s", "a b"]
    # n=3. test 0: xab abc bcd cdy -> abc, bcd match (2 of 4); test 1: bcd cde (2 of 2); test 2: qrs (0 of 1);
    # test 3 is shorter than 3 words: no n-gram, nothing to flag.
    out = ngram_overlap(train, test, n=3)
    assert isinstance(out, Overlap) and out.kind == "text" and out.n == 3
    assert out.ngrams.tolist() == [4, 2, 1, 0]
    assert out.matched.tolist() == [2, 2, 0, 0]
    np.testing.assert_allclose(out.share[:3], [0.5, 1.0, 0.0])
    assert np.isnan(out.share[3])
    assert out.flagged.tolist() == [True, True, False, False] and out.flagged_indices.tolist() == [0, 1]
    assert out.train_ngrams == 5  # abc bcd cde def efg
    assert ngram_overlap(train, test, n=3, min_matches=3).flagged.tolist() == [False] * 4
    frame = out.frame()
    assert list(frame.columns) == ["ngrams", "matched", "share", "flagged"] and len(frame) == 4
    score = out.score([1, 2])  # truth: 1 and 2 are contaminated -> flagged {0, 1}: tp 1, fp 1, fn 1
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 1, 1)
    assert score.precision == 0.5 and score.recall == 0.5


def test_contaminate_places_every_copy_where_its_record_says(synthetic_rows):
    train, val = synthetic_rows
    originals, planted = list(train[:300]), [val[i] for i in (3, 7, 11)]
    new, plants = contaminate(originals, planted, copies=4, seed=5)
    assert len(new) == 300 + 3 * 4 == plants.n_documents and plants.positions.shape == (3, 4)
    assert len(set(plants.positions.ravel().tolist())) == 12
    for i, row in enumerate(plants.positions):
        for position in row:
            assert new[position] is planted[i]
    rest = [doc for doc, planted_here in zip(new, plants.mask) if not planted_here]
    assert len(rest) == 300 and all(a is b for a, b in zip(rest, originals))  # originals keep their order
    again, same = contaminate(originals, planted, copies=4, seed=5)
    assert np.array_equal(same.positions, plants.positions)
    assert not np.array_equal(contaminate(originals, planted, copies=4, seed=6)[1].positions, plants.positions)
    assert plants.frame().shape == (12, 3)
    untouched, none = contaminate(originals, planted, copies=0)
    assert none.positions.shape == (3, 0) and all(a is b for a, b in zip(untouched, originals))


def test_the_13_gram_detector_finds_planted_documents_with_precision_and_recall_of_at_least_095(synthetic_rows):
    train, val = synthetic_rows
    rng = np.random.default_rng(0)
    whole = rng.choice(len(val), size=40, replace=False)                     # leaked whole, 1 to 3 copies each
    partial = rng.choice(np.setdiff1d(np.arange(len(val)), whole), size=20, replace=False)  # 30-token excerpts
    new, planted_rows = list(train), 0
    for copies, chunk in zip((1, 2, 3), np.array_split(whole, 3)):
        new, _ = contaminate(new, [val[i] for i in chunk], copies=copies, seed=copies)
        planted_rows += copies * len(chunk)
    excerpts = [val[i][start:start + 30] for i, start in zip(partial, rng.integers(0, 99, size=len(partial)))]
    new, _ = contaminate(new, excerpts, copies=1, seed=9)
    assert len(new) == len(train) + planted_rows + len(partial)
    truth = np.concatenate([whole, partial])

    out = ngram_overlap(new, val, n=13)
    score = out.score(truth)
    assert score.precision >= 0.95 and score.recall >= 0.95, score
    assert np.all(out.share[whole] == 1.0)                    # a whole copy matches every one of its 117 13-grams
    assert np.all(out.matched[partial] == 30 - 13 + 1)       # an excerpt of 30 tokens carries 18 of them
    clean = np.setdiff1d(np.arange(len(val)), truth)
    for i in [*whole[:2], *partial[:2], *clean[:2]]:          # the counts, by a scan that shares no code
        assert out.matched[i] == _brute_force_matches(new, val[i], 13)
    # why 13: short n-grams of the synthetic language recur in unrelated documents, and precision collapses
    short = ngram_overlap(new, val, n=6).score(truth)
    assert short.recall == 1.0 and short.precision < 0.5, short


def test_torch_rows_and_numpy_rows_give_the_same_verdicts(synthetic_rows):
    import torch

    train, val = synthetic_rows
    docs = list(train[:50]) + [val[0]]
    a = ngram_overlap(docs, val[:5])
    b = ngram_overlap(torch.from_numpy(np.stack(docs)), torch.from_numpy(val[:5]))
    assert a.flagged.tolist() == b.flagged.tolist() == [True, False, False, False, False]


@pytest.mark.parametrize("call, argument", [
    (lambda: ngram_overlap(["a b c"], ["a b c"], n=0), "n=0"),
    (lambda: ngram_overlap(["a b c"], ["a b c"], n=True), "n=True"),
    (lambda: ngram_overlap(["a b c"], ["a b c"], n=2.5), "n=2.5"),
    (lambda: ngram_overlap([], ["a b c"]), "train_docs is empty"),
    (lambda: ngram_overlap(["a b c"], []), "test_docs is empty"),
    (lambda: ngram_overlap("a b c", ["a b c"]), "train_docs is a single string"),
    (lambda: ngram_overlap(["a b c"], [[1, 2, 3]]), "train_docs holds text"),
    (lambda: ngram_overlap(["a b c", [1, 2]], ["a"]), "train_docs mixes"),
    (lambda: ngram_overlap([[1, 2.5, 3]], [[1]]), "train_docs[0] holds 2.5"),
    (lambda: ngram_overlap([[1, True, 3]], [[1]]), "train_docs[0] holds True"),
    (lambda: ngram_overlap(["a b"], ["a b"], min_matches=0), "min_matches=0"),
    (lambda: contaminate(["a b"], ["c d"], copies=-1), "copies=-1"),
    (lambda: contaminate(["a b"], ["c d"], copies=1.5), "copies=1.5"),
    (lambda: contaminate([], ["c d"]), "documents is empty"),
    (lambda: contaminate(["a b"], []), "planted is empty"),
    (lambda: contaminate(["a b"], ["c d"], seed=-1), "seed=-1"),
    (lambda: contaminate(["a b"], [[1, 2]]), "documents holds text"),
    (lambda: ngram_overlap(["a b"], ["a b"]).score([5]), "contaminated must be indices"),
])
def test_bad_input_raises_a_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=re.escape(argument)):
        call()
