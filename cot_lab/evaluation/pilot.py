"""Notebook 07's shipped experiments: contamination over training, memorisation against copies, junk and filtering,
and the candidates the evaluation gate judges.

contamination  one shape (d_model 48, 3 layers) at STUDY_FLOPS on synthetic-v3 with the first PLANTED validation
               rows planted COPIES times each, spread over the whole training stream; the loss on the planted
               rows and on CLEAN_ROWS clean validation rows watched over training (copies 0 is the clean run).
memorisation   the same shape at MEMO_FLOPS with groups of MEMO_GROUP_ROWS other validation rows planted at each of
               MEMO_COPIES (one training set holding sequences duplicated different numbers of times, as in
               Carlini et al. 2022), and the same run deduplicated (each of those rows once: what exact dedup leaves).
text           the same shape and compute on CPython's documentation and on its standard library's code (one BPE
               tokenizer, the docs'), each watched on both validation sets: the out-of-distribution gap of real text.
candidates     the gate's candidates against the clean run: the same shape at twice the compute (a real
               improvement), and at the same compute trained only on the common topics (synthetic-v3:common-topics,
               topics 12-15 never seen: the held-out-topics shift).
junk           the same shape and compute with JUNK_FRACTIONS of its training rows replaced by junk of each kind,
               and the same mixes with the perplexity filter in front (`cot_lab.evaluation.quality`).

Training is resumable (finished runs come back from the store); `write` measures every run (slice losses per
document, the 13-gram detector, membership, memorisation) and writes `precomputed/evaluation/` with a manifest.

    python -m cot_lab.evaluation.pilot run [--store DIR]
    python -m cot_lab.evaluation.pilot write [--store DIR] [--out DIR]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cot_lab.core.config import ModelConfig

CORPUS = "synthetic-v3"
SHAPE = (48, 3, 3)                      # d_model, n_layer, n_head
SEQ_LEN = 128
STUDY_FLOPS = 2e12
PLANTED, CLEAN_ROWS = 32, 256           # validation rows 0..31 are planted; rows 32..287 stay clean
COPIES = (0, 1, 2, 4, 8, 16, 32, 64)
CONTAMINATION_SEED = 0
MEMO_FLOPS = 8e12
MEMO_GROUP_ROWS = 16
MEMO_COPIES = (1, 16, 64, 96, 128, 192, 256)   # validation rows 288.. in groups of MEMO_GROUP_ROWS, in this order
WATCH_POINTS = 24                       # slice-loss measurements over a run
EVAL_SEQUENCES = 128
# 32 rows (4,096 tokens) a step, 560 steps at STUDY_FLOPS: a model this small is step-bound on a CPU (5 rows a
# step cost about as long as 32), and nothing here studies the batch size.
STUDY_BATCH = 32
JUNK_MIXES = {"random": (0.1, 0.25, 0.5), "shuffled": (0.25, 0.5), "boilerplate": (0.25, 0.5)}
FILTERED_FRACTION = 0.5               # each kind's 50% mix is trained again with the perplexity filter in front
FILTER_FPR = 0.01
FILES = ("contamination.json", "junk.json", "manifest.json")
RERUN = "python -m cot_lab.evaluation.pilot"


def study_config(vocab_size: int = 512) -> ModelConfig:
    d_model, n_layer, n_head = SHAPE
    return ModelConfig(d_model=d_model, n_layer=n_layer, n_head=n_head, vocab_size=vocab_size, seq_len=SEQ_LEN)


def train_kwargs(flops: float = STUDY_FLOPS) -> dict:
    """cl.train's settings for every run of the study at `flops` FLOPs."""
    return dict(flops=flops, batch_size=STUDY_BATCH, eval_sequences=EVAL_SEQUENCES, seed=0)


def training_rows(cfg: ModelConfig, corpus, flops: float = STUDY_FLOPS) -> int:
    """Rows of SEQ_LEN + 1 tokens a study run trains on: its steps x its batch."""
    from cot_lab.core.plan import plan_run

    kwargs = train_kwargs(flops)
    return plan_run(cfg, corpus, **kwargs).total_steps * kwargs["batch_size"]


def planted_rows(corpus):
    """The rows planted (validation rows 0..PLANTED-1) and the clean rows watched beside them (the next CLEAN_ROWS)."""
    val = corpus.val_batch(PLANTED + CLEAN_ROWS, SEQ_LEN)
    return val[:PLANTED], val[PLANTED:]


def contaminated_corpus(corpus, copies: int, cfg: ModelConfig | None = None, flops: float = STUDY_FLOPS):
    """synthetic-v3 with the planted rows `copies` times each, spread over the whole training stream of a study
    run at `flops` FLOPs (at least as many rows as the plants)."""
    from cot_lab.evaluation.contaminated import ContaminatedCorpus

    cfg = cfg or study_config(corpus.vocab_size)
    planted, _ = planted_rows(corpus)
    horizon = max(training_rows(cfg, corpus, flops), len(planted) * copies)
    return ContaminatedCorpus(corpus, planted, copies, seed=CONTAMINATION_SEED, horizon=horizon)


def _history_path(store, run_id: str) -> Path:
    return Path(store.root) / "slice-histories" / f"{run_id}.json"


def train_watched(cfg: ModelConfig, corpus, store, slices: dict, *, flops: float = STUDY_FLOPS, stop=None,
                  callbacks=(), progress: bool = False) -> tuple:
    """(Run, [slice-loss records]) of one study run, the slices watched WATCH_POINTS times over training; the
    history is kept beside the store, so a finished run comes back with it at once (a stored run whose history is
    missing is trained again, watched). stop, callbacks, progress: as cl.train's."""
    from cot_lab.core.io import write_json
    from cot_lab.core.plan import plan_run
    from cot_lab.core.training import train
    from cot_lab.evaluation.watch import SliceLossCallback

    kwargs = train_kwargs(flops)
    plan = plan_run(cfg, corpus, **kwargs)
    path = _history_path(store, plan.key)
    if not path.exists() and store.get(plan.key) is not None:
        store.delete(plan.key)
    watcher = SliceLossCallback(slices, every=max(1, plan.total_steps // WATCH_POINTS))
    run = train(cfg, corpus, store=store, callbacks=[watcher, *callbacks], progress=progress, stop=stop, **kwargs)
    if watcher.records and run.status == "ok":
        write_json(path, watcher.records)
    history = json.loads(path.read_text()) if path.exists() else []
    return run, history


def run_contamination(corpus, store, copies: int, **kwargs) -> tuple:
    """(Run, history) of the contamination study's run at `copies` (planted and clean rows watched)."""
    planted, clean = planted_rows(corpus)
    cfg = study_config(corpus.vocab_size)
    dirty = contaminated_corpus(corpus, copies, cfg, kwargs.get("flops", STUDY_FLOPS))
    return train_watched(cfg, dirty, store, {"planted": planted, "clean": clean}, **kwargs)


def memorisation_groups(corpus) -> dict:
    """{copies: the MEMO_GROUP_ROWS validation rows planted that many times} (rows after the contamination's)."""
    start = PLANTED + CLEAN_ROWS
    val = corpus.val_batch(start + MEMO_GROUP_ROWS * len(MEMO_COPIES), SEQ_LEN)
    return {copies: val[start + g * MEMO_GROUP_ROWS: start + (g + 1) * MEMO_GROUP_ROWS]
            for g, copies in enumerate(MEMO_COPIES)}


def memorisation_corpus(corpus, deduplicated: bool = False, cfg: ModelConfig | None = None):
    """synthetic-v3 with each memorisation group planted its number of times (once each when `deduplicated`),
    spread over the whole training stream of a MEMO_FLOPS run: one ContaminatedCorpus per group, nested."""
    from cot_lab.evaluation.contaminated import ContaminatedCorpus

    cfg = cfg or study_config(corpus.vocab_size)
    horizon = training_rows(cfg, corpus, MEMO_FLOPS)
    source = corpus
    for g, (copies, rows) in enumerate(memorisation_groups(corpus).items()):
        source = ContaminatedCorpus(source, rows, 1 if deduplicated else copies, seed=CONTAMINATION_SEED + 1 + g,
                                    horizon=horizon)
    return source


def run_memorisation(corpus, store, deduplicated: bool = False, **kwargs) -> tuple:
    """(Run, history) of the memorisation run (or its deduplicated twin), each group and the clean rows watched."""
    _, clean = planted_rows(corpus)
    slices = {"clean": clean, **{f"{c} copies": rows for c, rows in memorisation_groups(corpus).items()}}
    cfg = study_config(corpus.vocab_size)
    return train_watched(cfg, memorisation_corpus(corpus, deduplicated, cfg), store, slices,
                         **{"flops": MEMO_FLOPS, **kwargs})


TEXT_CORPORA = ("python-docs", "python-code")


def text_corpora() -> dict:
    """{name: corpus} of TEXT_CORPORA, both with python-docs' tokenizer, so either model reads the other's text."""
    from cot_lab.data import load_corpus

    docs = load_corpus("python-docs")
    return {"python-docs": docs, "python-code": load_corpus("python-code", tokenizer=docs.tokenizer)}


def run_text(name: str, store, **kwargs) -> tuple:
    """(Run, history) of the text run trained on `name`, both corpora's validation rows watched over training."""
    corpora = text_corpora()
    slices = {n: c.val_batch(EVAL_SEQUENCES, SEQ_LEN) for n, c in corpora.items()}
    return train_watched(study_config(corpora[name].vocab_size), corpora[name], store, slices, **kwargs)


def candidate_corpora() -> dict:
    """{candidate name: (corpus name, FLOPs)} of the gate's candidates (the baseline is the clean run)."""
    return {"twice the compute": (CORPUS, 2 * STUDY_FLOPS), "common topics only": (f"{CORPUS}:common-topics", STUDY_FLOPS)}


def run_candidate(name: str, store, **kwargs) -> tuple:
    """(Run, history) of one gate candidate, watched on the same clean rows as the contamination runs."""
    from cot_lab.data import load_corpus

    corpus_name, flops = candidate_corpora()[name]
    base = load_corpus(CORPUS)
    _, clean = planted_rows(base)
    return train_watched(study_config(base.vocab_size), load_corpus(corpus_name), store, {"clean": clean},
                         flops=flops, **kwargs)


def run_pilot(store, *, workers: int = 1, only: str | None = None) -> dict:
    """Train every study run into `store` (resumable; one process: the contaminated corpora are built here, not
    reloaded by name in workers). only: 'contamination', 'memorisation', 'text', 'candidates' or 'junk'."""
    from cot_lab.data import load_corpus

    corpus = load_corpus(CORPUS)
    done = dict(contamination={}, memorisation={}, text={}, candidates={}, junk={})
    if only in (None, "contamination"):
        for copies in COPIES:
            done["contamination"][copies] = run_contamination(corpus, store, copies)
            print(f"contamination: {copies} copies: done", flush=True)
    if only in (None, "memorisation"):
        for deduplicated in (False, True):
            done["memorisation"][deduplicated] = run_memorisation(corpus, store, deduplicated)
            print(f"memorisation{' (deduplicated)' if deduplicated else ''}: done", flush=True)
    if only in (None, "text"):
        for name in TEXT_CORPORA:
            done["text"][name] = run_text(name, store)
            print(f"text: {name}: done", flush=True)
    if only in (None, "candidates"):
        for name in candidate_corpora():
            done["candidates"][name] = run_candidate(name, store)
            print(f"candidate {name!r}: done", flush=True)
    if only in (None, "junk"):
        from cot_lab.evaluation.junk_study import run_junk_study

        done["junk"] = run_junk_study(corpus, store)
    return done


def pilot_dir() -> Path:
    from cot_lab.core.results import data_root

    return data_root() / "evaluation"


def main(argv=None) -> int:
    from cot_lab.core.results import pilot_cli
    from cot_lab.evaluation.study import write_pilot

    return pilot_cli(argv, RERUN, run_pilot, write_pilot, workers=1)


if __name__ == "__main__":
    sys.exit(main())
