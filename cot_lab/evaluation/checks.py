"""Notebook 07's exercise checkers. Each expected value is computed here a second way, not by the code the exercise
is about: the LSH S-curve written out from the band and row counts, the leak's share summed document by document,
the shift's price scored again from the generator itself."""
from __future__ import annotations

import numpy as np

from cot_lab.core import validate
from cot_lab.ui.checks import CheckResult, check_number


def candidate_probability_answer(answer, *, similarity: float, bands: int, rows: int) -> CheckResult:
    """Check the chance that two documents of Jaccard `similarity` share at least one LSH band (within 1e-4).
    Expected: one band matches with probability s^rows (all its rows agree); no band with (1 - s^rows)^bands."""
    s = validate.number("similarity", similarity, low=0.0, high=1.0)
    b, r = validate.integer("bands", bands), validate.integer("rows", rows)
    expected = 1.0 - (1.0 - s ** r) ** b
    return check_number(answer, expected, abs=1e-4, name="my_candidate_probability",
                        hint="one band: every one of its rows must agree, each with probability s; the pair is a "
                             "candidate unless every band misses.")


def leak_share_answer(answer, *, baseline_headline, candidate_headline, planted: int) -> CheckResult:
    """Check the share of the headline improvement (baseline minus candidate, summed over the headline documents)
    that comes from the first `planted` documents, the planted ones (within 0.01)."""
    base = np.asarray(baseline_headline, float)
    cand = np.asarray(candidate_headline, float)
    k = validate.integer("planted", planted, high=len(base) - 1)
    gains = base - cand  # per document, nats/token: positive where the candidate is better
    expected = float(sum(gains[:k]) / sum(gains))
    return check_number(answer, expected, abs=0.01, name="my_leak_share",
                        hint="the headline is a mean over its documents, so its change is the sum of the documents' "
                             "changes over their number: add up the planted documents' part and divide by the whole.")


def shift_price_answer(answer, *, shifted_corpus, base_corpus, rows) -> CheckResult:
    """Check what a perfect model of the unshifted language pays above the floor on shifted documents (nats/token,
    within 1e-3): both languages score the same rows again here, from their generators."""
    rows = np.asarray(rows)
    expected = float(base_corpus.score(rows).mean() - shifted_corpus.score(rows).mean())
    return check_number(answer, expected, abs=1e-3, name="my_shift_price", unit="nats/token",
                        hint="the floor of a document is its exact loss under the language it came from; the perfect "
                             "unshifted model's loss is its exact loss under the training language.")
