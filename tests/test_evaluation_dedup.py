"""Near-duplicates: MinHash LSH (FineWeb's 14 x 8 bands) scored against planted copies of known exact Jaccard.

The originals are rows of the kit's synthetic language as text; the copies are edited to target Jaccards and
their exact shingle Jaccard is computed afterwards. LSH catches a pair of similarity s with probability
1 - (1 - s^8)^14 (the S-curve, derived in the test from the bands alone), which the measured rates must follow.
"""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.evaluation import (FINEWEB_THRESHOLD, bands_rows_for, candidate_probability, dedup, exact_jaccard,
                                plant_near_duplicates)

TARGETS = [0.3] * 50 + [0.5] * 100 + [0.6] * 100 + [0.7] * 100 + [0.8] * 100 + [0.9] * 100 + [1.0] * 50


@pytest.fixture(scope="module")
def planted():
    """(originals + copies, the NearDuplicates record, the Dedup result with FineWeb's defaults)."""
    corpus = cl.load_corpus("synthetic-v3")
    originals = [corpus.decode(row) for row in corpus.val_batch(1500, 128).numpy()]
    near = plant_near_duplicates(originals, TARGETS, seed=0)
    documents = originals + near.copies
    return documents, near, dedup(documents)


def _planted_pairs(near, n_originals):
    return [(int(s), n_originals + k) for k, s in enumerate(near.sources)]


def test_hand_checked_jaccards_and_clusters():
    # 5-gram shingles: {abcde, bcdef} and {abcde, bcdeg} share 1 of 3
    assert exact_jaccard("a b c d e f", "a b c d e g") == pytest.approx(1 / 3)
    assert exact_jaccard([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]) == 1.0
    assert exact_jaccard("a b c", "a b c") == 1.0 and exact_jaccard("a b c", "a b d") == 0.0  # short: one shingle
    assert exact_jaccard("a b c d", "b c d e", n=3) == pytest.approx(1 / 3)
    text = " ".join(f"w{i}" for i in range(60))
    other = " ".join(f"v{i}" for i in range(60))
    out = dedup([text, text, other, text + " tail", other.upper()])
    assert out.bands == 14 and out.rows == 8 and out.num_perm == 112
    assert out.effective_threshold == pytest.approx((1 / 14) ** (1 / 8)) and abs(out.effective_threshold - 0.719) < 1e-3
    assert out.clusters == ((0, 1, 3),) and out.kept.tolist() == [0, 2, 4] and out.removed.tolist() == [1, 3]
    assert out.pairs.tolist() == [[0, 1], [0, 3], [1, 3]]
    # copies agree on every hash; the appended word changes 1 of 57 shingles (exact 56/57)
    np.testing.assert_allclose(out.estimated_jaccard[0], 1.0)
    assert abs(out.estimated_jaccard[1] - 56 / 57) < 0.05 and out.duplicate_rate == pytest.approx(0.4)
    assert list(out.frame().columns) == ["first", "second", "estimated_jaccard", "cluster"]


def test_planted_copies_hit_their_target_jaccard_exactly_measured(planted):
    documents, near, _ = planted
    n_originals = len(documents) - len(near.copies)
    exact = [exact_jaccard(documents[s], documents[c]) for s, c in _planted_pairs(near, n_originals)]
    np.testing.assert_allclose(near.jaccard, exact, atol=1e-12)  # the record is the exact value
    # one substitution moves a 129-word copy by about 0.04 in Jaccard, so the target is met to within that
    assert np.max(np.abs(near.jaccard - near.target)) < 0.045
    assert len(set(near.sources.tolist())) == len(TARGETS)


def test_minhash_finds_every_planted_pair_above_the_threshold_and_few_below(planted):
    documents, near, out = planted
    n_originals = len(documents) - len(near.copies)
    found = np.array([out.has_pair(s, c) for s, c in _planted_pairs(near, n_originals)])
    s = near.jaccard
    assert found[s >= 0.9].all(), s[(s >= 0.9) & ~found]         # P(miss) < 4e-4 each at s = 0.9
    assert found[s >= FINEWEB_THRESHOLD].mean() >= 0.85           # the S-curve's soft shoulder: 0.72 < s < 0.9
    assert found[s <= 0.5].mean() <= 0.1 and not found[s <= 0.35].any()
    # the measured rate follows 1 - (1 - s^8)^14 in every band of exact Jaccard (4 binomial sigmas)
    for lo, hi in [(0.45, 0.55), (0.55, 0.65), (0.65, 0.75), (0.75, 0.85)]:
        inside = (s >= lo) & (s < hi)
        expected = (1 - (1 - s[inside] ** 8) ** 14).mean()
        sigma = np.sqrt(expected * (1 - expected) / inside.sum())
        assert abs(found[inside].mean() - expected) <= 4 * sigma + 0.01, (lo, hi, found[inside].mean(), expected)
        np.testing.assert_allclose(candidate_probability(s[inside]).mean(), expected)
    # the originals are not near-duplicates of each other: every pair found is a planted one, or a copy's
    # cluster-mate (two copies never share a source), and each found pair's estimate is within 5 sigma of exact
    planted_set = set(_planted_pairs(near, n_originals))
    assert {tuple(p) for p in out.pairs.tolist()} <= planted_set
    exact = np.array([exact_jaccard(documents[i], documents[j]) for i, j in out.pairs])
    sigma = np.sqrt(np.maximum(exact * (1 - exact), 0.01) / out.num_perm)
    assert np.all(np.abs(out.estimated_jaccard - exact) <= 5 * sigma)
    # dedup keeps the first of each pair: exactly the copies it found are removed
    assert out.removed.tolist() == sorted(c for (_, c), hit in zip(_planted_pairs(near, n_originals), found) if hit)


@pytest.mark.xfail(strict=True, reason="issue 18's target: every planted pair above the threshold found. LSH's S-curve "
                   "catches a pair at s = 0.72 with probability 0.59, so with FineWeb's 14 x 8 bands 91% of the pairs at "
                   "or above 0.72 were found (measured December 2026); every pair from s = 0.9 up")
def test_minhash_finds_every_planted_pair_at_or_above_the_threshold(planted):
    documents, near, out = planted
    n_originals = len(documents) - len(near.copies)
    found = np.array([out.has_pair(s, c) for s, c in _planted_pairs(near, n_originals)])
    assert found[near.jaccard >= FINEWEB_THRESHOLD].all()


def test_threshold_and_bands_rows_pick_the_bands():
    assert bands_rows_for(FINEWEB_THRESHOLD) == (14, 8)
    for threshold in (0.3, 0.5, 0.8, 0.9, 1.0):
        b, r = bands_rows_for(threshold)
        assert b >= 2 and b * r <= 112
        assert abs((1 / b) ** (1 / r) - threshold) < 0.02, (threshold, b, r)
    docs = [" ".join(f"w{i}" for i in range(40)), " ".join(f"w{i}" for i in range(40))]
    low = dedup(docs, threshold=0.5)
    assert (low.bands, low.rows) == bands_rows_for(0.5) and low.num_perm == 112 and low.clusters == ((0, 1),)
    manual = dedup(docs, bands_rows=(20, 5))
    assert (manual.bands, manual.rows, manual.num_perm) == (20, 5, 100)
    assert manual.effective_threshold == pytest.approx(0.05 ** 0.2)  # (1/20)^(1/5) = 0.549


def test_importing_cot_lab_does_not_import_datasketch():
    code = "import sys, json, cot_lab; print(json.dumps('datasketch' in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) is False
    assert cl.dedup is dedup


@pytest.mark.parametrize("call, argument", [
    (lambda: dedup(["a b c"], threshold=0), "threshold=0"),
    (lambda: dedup(["a b c"], threshold=1.5), "threshold=1.5"),
    (lambda: dedup(["a b c"], threshold=float("nan")), "threshold=nan"),
    (lambda: dedup(["a b c"], threshold=True), "threshold=True"),
    (lambda: dedup([]), "documents is empty"),
    (lambda: dedup(["a b c"], n=0), "n=0"),
    (lambda: dedup(["a b c"], threshold=0.5, bands_rows=(14, 8)), "pass one of them"),
    (lambda: dedup(["a b c"], bands_rows=(1, 8)), "bands_rows[0] (bands)=1"),
    (lambda: dedup(["a b c"], bands_rows=14), "bands_rows=14"),
    (lambda: exact_jaccard("a b", "a b", n=0), "n=0"),
    (lambda: exact_jaccard("a b", [1, 2]), "a holds text but b holds token ids"),
    (lambda: plant_near_duplicates(["a b c d e f"], [1.2]), "jaccards[0]=1.2"),
    (lambda: plant_near_duplicates(["a b c d e f"], []), "jaccards is empty"),
    (lambda: plant_near_duplicates(["a b c d e f"], 0.5), "jaccards=0.5"),
    (lambda: plant_near_duplicates(["a b c d e f"], [0.5, 0.5]), "only 1 documents have at least n=5"),
    (lambda: plant_near_duplicates([], [0.5]), "documents is empty"),
])
def test_bad_input_raises_a_value_error_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=re.escape(argument)):
        call()
