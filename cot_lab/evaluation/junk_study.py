"""Notebook 07's junk study: what junk in the training stream costs at equal compute, and what a filter buys back.

The study runs (`pilot.SHAPE` at `pilot.STUDY_FLOPS`, the clean run being the contamination study's 0 copies)
train on synthetic-v3 with a share of their rows replaced by junk (`junk.JunkCorpus`: random ids, shuffled rows,
or a few boilerplate rows repeated), at the shares of `pilot.JUNK_MIXES`; each kind's FILTERED_FRACTION mix is
trained again behind the perplexity filter (`quality.quality_filter`) under REFERENCE, a shipped model trained on
clean synthetic-v3. Every run trains the same FLOPs; the junk rows spend some of them. The filter is scored
against the junk positions on SCORED_ROWS training rows; exact deduplication (MinHash LSH) is scored on the same
rows, as the tool that catches what perplexity cannot.
"""
from __future__ import annotations

import numpy as np

from cot_lab.evaluation import pilot

REFERENCE = "lifetime-67k"   # shipped: 4 layers x d_model 32, trained on clean synthetic-v3 (notebook 04)
SCORED_ROWS = 4096


def reference_model():
    """The filter's reference: the shipped model REFERENCE (sha256-checked), on CPU in eval mode."""
    from cot_lab.core.shipped import shipped_model

    return shipped_model(REFERENCE)[0]


def junk_source(corpus, kind: str, fraction: float, filtered: bool = False, reference=None):
    """The training corpus of one junk run: `fraction` of synthetic-v3's rows replaced by `kind` junk, behind the
    perplexity filter when `filtered` (calibrated at pilot.FILTER_FPR on clean validation rows)."""
    from cot_lab.evaluation.junk import JunkCorpus
    from cot_lab.evaluation.quality import quality_filter

    dirty = JunkCorpus(corpus, fraction, kind, seed=0)
    if not filtered:
        return dirty
    filtered_corpus, _ = quality_filter(dirty, reference if reference is not None else reference_model(),
                                        false_positive_rate=pilot.FILTER_FPR)
    return filtered_corpus


def study_mixes() -> list[tuple[str, float, bool]]:
    """(kind, fraction, filtered) of every junk run, in training order."""
    mixes = [(kind, f, False) for kind, fractions in pilot.JUNK_MIXES.items() for f in fractions]
    return mixes + [(kind, pilot.FILTERED_FRACTION, True) for kind in pilot.JUNK_MIXES]


def run_junk(corpus, store, kind: str, fraction: float, filtered: bool = False, *, reference=None, **kwargs):
    """(Run, history) of one junk run, the clean validation rows watched over training; kwargs as train_watched's."""
    _, clean = pilot.planted_rows(corpus)
    source = junk_source(corpus, kind, fraction, filtered, reference)
    return pilot.train_watched(pilot.study_config(corpus.vocab_size), source, store, {"clean": clean}, **kwargs)


def run_junk_study(corpus, store) -> dict:
    """{(kind, fraction, filtered): (Run, history)} for every mix of study_mixes() (resumable from `store`)."""
    reference = reference_model()
    done = {}
    for kind, fraction, filtered in study_mixes():
        done[(kind, fraction, filtered)] = run_junk(corpus, store, kind, fraction, filtered, reference=reference)
        print(f"junk: {fraction:.0%} {kind}{' filtered' if filtered else ''}: done", flush=True)
    return done


def score_filters(corpus, reference) -> dict:
    """Per kind, on the first SCORED_ROWS rows of its FILTERED_FRACTION mix: the perplexity filter's precision,
    recall and false-positive rate against the true junk rows, and exact dedup's (MinHash LSH at FineWeb's 14 x 8
    bands: a row is flagged when it falls in a cluster after its first member)."""
    from cot_lab.evaluation.dedup import dedup
    from cot_lab.evaluation.junk import JunkCorpus
    from cot_lab.evaluation.quality import QualityFilter, split_clean_rows

    calibration, held_out = split_clean_rows(corpus, pilot.SEQ_LEN)
    qf = QualityFilter.calibrate(reference, calibration, pilot.FILTER_FPR)
    out = dict(threshold=qf.threshold, stated_fpr=pilot.FILTER_FPR,
               held_out_fpr=float(np.mean(qf.flags(held_out))), kinds={})
    for kind in pilot.JUNK_MIXES:
        dirty = JunkCorpus(corpus, pilot.FILTERED_FRACTION, kind, seed=0)
        batches = dirty.train_batches(64, pilot.SEQ_LEN, 0)
        rows = np.concatenate([next(batches).numpy() for _ in range(SCORED_ROWS // 64)])
        truth = dirty.junk_mask(SCORED_ROWS)
        score = qf.evaluate(rows, truth)
        found = dedup(rows).removed
        flagged = np.zeros(SCORED_ROWS, bool)
        flagged[found] = True
        tp = int(np.sum(flagged & truth))
        out["kinds"][kind] = dict(
            perplexity=dict(precision=score.precision, recall=score.recall, fpr=score.false_positive_rate,
                            flagged=score.n_flagged, junk=score.n_junk),
            dedup=dict(precision=tp / max(int(flagged.sum()), 1) if flagged.any() else float("nan"),
                       recall=tp / int(truth.sum()), flagged=int(flagged.sum())))
        print(f"filters scored on {kind}", flush=True)
    return out


def junk_records(done: dict, corpus) -> dict:
    """junk.json: every junk run (record, history, final clean-row loss) and the filters' scores."""
    from cot_lab.core.results import shipped_record
    from cot_lab.evaluation.gate import document_losses

    _, clean = pilot.planted_rows(corpus)
    runs = []
    for (kind, fraction, filtered), (run, history) in done.items():
        runs.append(dict(kind=kind, fraction=fraction, filtered=filtered, run=shipped_record(run), history=history,
                         clean_losses=document_losses(run.load_model(), clean).tolist()))
    return dict(reference=REFERENCE, filter_fpr=pilot.FILTER_FPR, runs=runs,
                filters=score_filters(corpus, reference_model()))
