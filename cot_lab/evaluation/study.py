"""Measure notebook 07's study runs and write the shipped set `precomputed/evaluation/` (see `pilot` for the runs).

Per run (the clean run, each contaminated run, each gate candidate):
  slices         per-document losses (nats/token) on the same validation documents for every run: "headline"
                 (validation rows 0..287, the planted 32 among them), "clean" (rows 32..287), and the shifts'
                 own validation rows ("rare topics", "deep nesting", "common topics"): the gate and the shift panel
                 read these.
  detector       GPT-3's 13-gram check of validation rows 0..287 against the rows the run trained on: flagged rows,
                 precision and recall against the planted ones.
  membership     loss and Min-K% Prob scores, planted rows (members) against clean rows (non-members): ROC AUC.
  memorisation   Carlini et al.'s exact continuation: greedy `suffix` tokens after a `prefix` of each planted and
                 each clean row.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cot_lab.evaluation import pilot

SHIFT_SLICES = {"rare topics": "synthetic-v3:rare-topics", "deep nesting": "synthetic-v3:deep-nesting",
                "common topics": "synthetic-v3:common-topics"}
SHIFT_ROWS = 256
MEMORISATION_PREFIX, MEMORISATION_SUFFIX = 32, 16


def slice_rows(corpus) -> dict:
    """{slice name: int rows [n, SEQ_LEN + 1]} every run is scored on (see the module's docstring)."""
    from cot_lab.data import load_corpus

    planted, clean = pilot.planted_rows(corpus)
    rows = {"headline": np.concatenate([planted.numpy(), clean.numpy()]), "clean": clean.numpy()}
    for name, corpus_name in SHIFT_SLICES.items():
        rows[name] = load_corpus(corpus_name).val_batch(SHIFT_ROWS, pilot.SEQ_LEN).numpy()
    return rows


def floors(rows: dict) -> dict:
    """Per slice: the exact floor of the language it was drawn from (entropy and its standard error over 2^19
    tokens, nats/token), and per document the exact loss of these very rows under that language ("exact") and
    under the unshifted language ("unshifted"): a model's excess on a document is its loss minus "exact", and
    "unshifted" - "exact" is what even a perfect model of the training language pays for the shift."""
    from cot_lab.data import load_corpus

    base = load_corpus(pilot.CORPUS)
    out = {}
    for name, r in rows.items():
        corpus = load_corpus(SHIFT_SLICES.get(name, pilot.CORPUS))
        mean, se = corpus.entropy_for(pilot.SEQ_LEN)
        out[name] = dict(corpus=corpus.name, entropy=float(mean), entropy_se=float(se),
                         exact=corpus.score(r).mean(1).tolist(), unshifted=base.score(r).mean(1).tolist())
    return out


def trained_rows(corpus, n_rows: int) -> np.ndarray:
    """The first n_rows training rows a study run saw (seed 0, its batch size: rows do not depend on it)."""
    batches = corpus.train_batches(pilot.train_kwargs()["batch_size"], pilot.SEQ_LEN, 0)
    out, have = [], 0
    while have < n_rows:
        batch = next(batches).numpy()
        out.append(batch)
        have += len(batch)
    return np.concatenate(out)[:n_rows]


def detect(corpus, headline_rows: np.ndarray, n_rows: int) -> dict:
    """The 13-gram detector on the rows the run trained on: flags per headline row, precision and recall."""
    from cot_lab.evaluation.overlap import ngram_overlap

    start = time.perf_counter()
    overlap = ngram_overlap(trained_rows(corpus, n_rows), headline_rows)
    truth = np.zeros(len(headline_rows), bool)
    truth[:pilot.PLANTED] = getattr(corpus, "copies", 0) > 0
    score = overlap.score(truth)
    return dict(n=overlap.n, flagged=overlap.flagged.tolist(), matched=overlap.matched.tolist(),
                precision=score.precision, recall=score.recall, true_positives=score.true_positives,
                false_positives=score.false_positives, wall_s=time.perf_counter() - start)


def measure_run(run, rows: dict, *, corpus=None, detector_rows: int | None = None) -> dict:
    """Slice losses, membership and memorisation of one trained run (and the detector, given its corpus)."""
    from cot_lab.evaluation.gate import document_losses
    from cot_lab.evaluation.membership import membership_report
    from cot_lab.evaluation.memorisation import continuation_matches

    model = run.load_model()
    out = dict(slices={name: document_losses(model, r).tolist() for name, r in rows.items()})
    planted, clean = rows["headline"][:pilot.PLANTED], rows["clean"]
    report = membership_report(model, planted, clean)
    out["membership"] = dict(auc_loss=report.loss_auc, auc_min_k=report.min_k_auc, k=report.k,
                             chance_se=report.chance_se, summary=report.summary())
    out["memorisation"] = dict(prefix=MEMORISATION_PREFIX, suffix=MEMORISATION_SUFFIX)
    for name, r in (("planted", planted), ("clean", clean)):
        matches = continuation_matches(model, r, prefix=MEMORISATION_PREFIX, suffix=MEMORISATION_SUFFIX)
        out["memorisation"][name] = matches.matched.tolist()  # leading suffix tokens reproduced, per row
    if corpus is not None:
        out["detector"] = detect(corpus, rows["headline"], detector_rows)
    return out


def measure_memorisation(run, history, corpus, deduplicated: bool) -> dict:
    """One memorisation run: per group (by its copies in the duplicated run) the leading suffix tokens greedy
    decoding reproduces per row, the same for the clean rows, and the clean rows' per-document losses."""
    from cot_lab.evaluation.gate import document_losses
    from cot_lab.evaluation.memorisation import continuation_matches

    model = run.load_model()
    _, clean = pilot.planted_rows(corpus)

    def matched(rows):
        return continuation_matches(model, rows, prefix=MEMORISATION_PREFIX, suffix=MEMORISATION_SUFFIX).matched.tolist()

    return dict(deduplicated=deduplicated, run=run, history=history, clean=matched(clean),
                groups={str(c): matched(rows) for c, rows in pilot.memorisation_groups(corpus).items()},
                clean_losses=document_losses(model, clean).tolist())


def write_pilot(store, out: str | Path | None = None) -> Path:
    """Measure every study run (training first whatever is missing) and write the shipped set with its manifest."""
    from cot_lab.core.io import write_json
    from cot_lab.core.results import hardware_summary, sha256_file, shipped_record
    from cot_lab.core.training import versions
    from cot_lab.data import load_corpus

    done = pilot.run_pilot(store)
    corpus = load_corpus(pilot.CORPUS)
    rows = slice_rows(corpus)
    cfg = pilot.study_config(corpus.vocab_size)
    n_rows = pilot.training_rows(cfg, corpus)
    contamination = []
    for copies, (run, history) in done["contamination"].items():
        dirty = pilot.contaminated_corpus(corpus, copies, cfg)
        contamination.append(dict(copies=copies, run=shipped_record(run), history=history,
                                  positions=dirty.plants.positions.tolist(),
                                  **measure_run(run, rows, corpus=dirty, detector_rows=n_rows)))
        print(f"measured: {copies} copies", flush=True)
    memorisation = [measure_memorisation(run, history, corpus, dedup)
                    for dedup, (run, history) in done["memorisation"].items()]
    memorisation = [{**m, "run": shipped_record(m["run"])} for m in memorisation]
    candidates = [dict(name=name, corpus=pilot.candidate_corpora()[name][0], run=shipped_record(run), history=history,
                       **measure_run(run, rows)) for name, (run, history) in done["candidates"].items()]
    folder = Path(out) if out else pilot.pilot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "contamination.json", dict(
        corpus=pilot.CORPUS, shape=pilot.SHAPE, flops=pilot.STUDY_FLOPS, planted=pilot.PLANTED,
        clean_rows=pilot.CLEAN_ROWS, training_rows=n_rows, seed=pilot.CONTAMINATION_SEED, floors=floors(rows),
        memorisation=dict(prefix=MEMORISATION_PREFIX, suffix=MEMORISATION_SUFFIX),
        runs=contamination, candidates=candidates,
        text=[dict(name=name, run=shipped_record(run), history=history) for name, (run, history) in done["text"].items()],
        memorisation_study=dict(flops=pilot.MEMO_FLOPS, group_rows=pilot.MEMO_GROUP_ROWS, copies=pilot.MEMO_COPIES,
                                prefix=MEMORISATION_PREFIX, suffix=MEMORISATION_SUFFIX, runs=memorisation)))
    from cot_lab.evaluation.junk_study import junk_records

    write_json(folder / "junk.json", junk_records(done["junk"], corpus))
    runs = [r for part in ("contamination", "memorisation", "text", "candidates", "junk") for r, _ in done[part].values()]
    wall_s = float(sum(r.wall_s for r in runs))
    files = [f for f in pilot.FILES if f != "manifest.json"]
    write_json(folder / "manifest.json", dict(versions=versions(), hardware=hardware_summary(), runs_wall_s=wall_s,
                                              files={name: sha256_file(folder / name) for name in files}))
    return folder
