"""Notebook 05's shipped width-transfer experiment: LR sweeps at three widths, standard parametrisation and muP.

Widths 32, 64 and 128 (4 layers, heads of 8, 67K to 857K parameters) on notebook 02's language (synthetic-v3,
128 tokens of context), every run on the same TOKENS tokens at batch 4, six peak rates 2x apart, extended 2x beyond
an edge until each width's best rate is inside its grid; once in the standard parametrisation and once under muP
with base width 32 (`core/mup.py`), where the two are the same model. Beside them, both coordinate checks.

    python -m cot_lab.hparams.width_pilot run [--store DIR] [--workers 1]   # resumable: finished runs come back
    python -m cot_lab.hparams.width_pilot write [--store DIR] [--out DIR]   # -> precomputed/width-transfer/
"""
from __future__ import annotations

import sys
from pathlib import Path

from cot_lab.core.config import ModelConfig

CORPUS = "synthetic-v3"
WIDTHS = (32, 64, 128)
N_LAYER, SEQ_LEN, BATCH = 4, 128, 4
TOKENS = 2 ** 19                     # 1,024 steps of 4 x 128 tokens at every width
LRS = (1.25e-3, 2.5e-3, 5e-3, 1e-2, 2e-2, 4e-2)
BASE_WIDTH = 32
PARAMETRISATIONS = {"standard": None, "mup": BASE_WIDTH}
EVAL_SEQUENCES = 128
CHECK_WIDTHS, CHECK_STEPS, CHECK_LR = (32, 64, 128, 256), 4, 1e-2
FILES = ("width.json",)


def template(vocab_size: int = 512) -> ModelConfig:
    return ModelConfig(d_model=WIDTHS[0], n_layer=N_LAYER, n_head=WIDTHS[0] // 8, vocab_size=vocab_size,
                       seq_len=SEQ_LEN)


def _sweeps(corpus, store, base, lrs, widths=WIDTHS, **kw):
    from cot_lab.hparams.width import width_sweeps

    return width_sweeps(template(corpus.vocab_size), corpus, widths=widths, tokens=TOKENS, lrs=lrs, batch_size=BATCH,
                        mup_base_width=base, store=store, eval_sequences=EVAL_SEQUENCES, **kw)


def edge_rates(sweep) -> list[float]:
    """A rate 2x beyond the end of `sweep`'s grid where its lowest loss sits at that end (a diverged run is tried,
    and worse than any finished one), else nothing."""
    import math

    tried = sorted((r.hparams["lr"], r.final_val_loss if r.status == "ok" else math.inf) for r in sweep.runs)
    best = min(range(len(tried)), key=lambda i: tried[i][1])
    if best == 0:
        return [tried[0][0] / 2]
    return [tried[-1][0] * 2] if best == len(tried) - 1 else []


def run_pilot(store, *, workers: int = 1) -> dict:
    """Train both parametrisations' sweeps into `store`, extending each width's grid until its best rate is inside."""
    from cot_lab.data import load_corpus

    corpus = load_corpus(CORPUS)
    out = {}
    for name, base in PARAMETRISATIONS.items():
        sweeps = _sweeps(corpus, store, base, LRS, workers=workers)
        for _ in range(3):
            extra = {w: edge_rates(s) for w, s in sweeps.items()}
            if not any(extra.values()):
                break
            for w, rates in extra.items():
                if rates:
                    lrs = sorted({*(r.hparams["lr"] for r in sweeps[w].runs), *rates})
                    sweeps[w] = _sweeps(corpus, store, base, lrs, widths=(w,), workers=workers)[w]
        out[name] = sweeps
    return out


def pilot_dir() -> Path:
    from cot_lab.core.results import data_root

    return data_root() / "width-transfer"


def write_pilot(store, out: str | Path | None = None) -> Path:
    """Write both parametrisations' runs (with their curves) and both coordinate checks, and a sha256 manifest."""
    from cot_lab.core.io import write_json
    from cot_lab.core.results import hardware_summary, sha256_file, shipped_record
    from cot_lab.core.training import versions
    from cot_lab.data import load_corpus
    from cot_lab.hparams.width import coordinate_check

    corpus = load_corpus(CORPUS)
    sweeps = run_pilot(store)  # all from the store once it has run: returns at once
    runs = {name: [shipped_record(r) for w in WIDTHS for r in sweeps[name][w].runs] for name in PARAMETRISATIONS}
    checks = {name: coordinate_check(template(corpus.vocab_size), corpus, widths=CHECK_WIDTHS, steps=CHECK_STEPS,
                                     lr=CHECK_LR, mup_base_width=base).to_dict(orient="records")
              for name, base in PARAMETRISATIONS.items()}
    folder = Path(out) if out else pilot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "width.json", dict(corpus=CORPUS, widths=WIDTHS, tokens=TOKENS, batch_size=BATCH, lrs=LRS,
                                           base_width=BASE_WIDTH, runs=runs, coordinate_checks=checks,
                                           check=dict(widths=CHECK_WIDTHS, steps=CHECK_STEPS, lr=CHECK_LR)))
    wall_s = float(sum(r["wall_s"] for rs in runs.values() for r in rs))
    write_json(folder / "manifest.json", dict(versions=versions(), hardware=hardware_summary(), runs_wall_s=wall_s,
                                              files={name: sha256_file(folder / name) for name in FILES}))
    return folder


def load_width_pilot(root: str | Path | None = None) -> dict:
    """{"standard"/"mup": {width: HparamSweep}, "checks": {"standard"/"mup": DataFrame}, "manifest": dict}, checked
    against the manifest's sha256."""
    import pandas as pd

    from cot_lab.core.results import shipped_run, verified_json
    from cot_lab.hparams.sweeps import HparamSweep

    folder = Path(root) if root else pilot_dir()
    manifest, (data,) = verified_json(folder, FILES, "python -m cot_lab.hparams.width_pilot")
    out = dict(manifest=manifest, checks={k: pd.DataFrame(v) for k, v in data["coordinate_checks"].items()})
    for name, records in data["runs"].items():
        runs = [shipped_run(r) for r in records]
        out[name] = {w: HparamSweep("lr", sorted([r for r in runs if r.config.d_model == w],
                                                 key=lambda r: r.hparams["lr"]))
                     for w in sorted({r.config.d_model for r in runs})}
    return out


def main(argv=None) -> int:
    from cot_lab.core.results import pilot_cli

    return pilot_cli(argv, "python -m cot_lab.hparams.width_pilot", run_pilot, write_pilot, workers=1)


if __name__ == "__main__":
    sys.exit(main())
