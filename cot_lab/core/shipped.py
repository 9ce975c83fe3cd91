"""Shipped models: small trained checkpoints inside the package, so a notebook starts from the same model everywhere.

A notebook that prunes "the largest run in your store" prunes whatever the student happened to train, and
its results differ from student to student. So notebook 03 starts from a shipped model, loaded by name:

    model, run = cl.shipped_model("laptop-67k")    # the model and its training record (a cl.Run)

The folder `cot_lab/precomputed/models/` (package data, so it ships in the wheel) holds, per name,
`<name>.safetensors` (the kit's one model-file format, `core/checkpoint.py`) and `<name>.json` (the Run
record `cl.train` wrote), and `models.json`, the manifest: the sha256 of both files, checked on every load,
with the parameters, tokens, FLOPs and final loss of each model. Every shipped model is a real `cl.train` run
of a spec in SPECS, so an instructor rebuilds one with

    python -m cot_lab.core.shipped build laptop-67k [--store DIR] [--out DIR]

(a store makes an interrupted build resume: a finished run comes back from it at once).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cot_lab.core.io import write_json
from cot_lab.core.results import data_root, sha256_file, shipped_record
from cot_lab.core.runs import Run, RunStore, now_iso

MODELS_DIR = "models"
MANIFEST = "models.json"


@dataclass(frozen=True)
class ShippedSpec:
    """How one shipped model is trained: a dense shape on the synthetic corpus under a FLOP budget."""

    d_model: int
    n_layer: int
    n_head: int
    seq_len: int          # tokens of context (the profile's seq_len)
    flops: float          # training FLOPs (Chinchilla App. F count)
    eval_sequences: int   # validation rows behind final_val_loss
    about: str            # why this model, in one line
    seed: int = 0
    corpus: str = "synthetic"

    def config(self, vocab_size: int):
        """The ModelConfig of this spec for a corpus with `vocab_size` tokens."""
        from cot_lab.core.config import ModelConfig

        return ModelConfig(d_model=self.d_model, n_layer=self.n_layer, n_head=self.n_head, vocab_size=vocab_size,
                           seq_len=self.seq_len)

    def batch_size(self) -> int:
        """Sequences per step: the kit's budget rule `batch_size_for` (the one the IsoFLOP sweeps use)."""
        from cot_lab.core.recipe import batch_size_for

        return batch_size_for(self.flops, self.seq_len)


# laptop-67k (4 layers x d_model 32, 66,848 parameters at seq_len 128, on the version-2 language with the recipe
# of its time) was chosen near the compute-optimal size at 4e12 FLOPs of the laptop fit shipped then (~81K
# parameters, ~100 tokens/parameter); at 4e12 FLOPs it trains on ~99 tokens/parameter (a few minutes on one CPU
# thread). Two heads per layer, so "50% of the heads" is one whole head. It is notebook 03's model, not a sweep run.
SPECS: dict[str, ShippedSpec] = {
    "laptop-67k": ShippedSpec(32, 4, 2, seq_len=128, flops=4e12, eval_sequences=128,
                              about="near compute-optimal at 4e12 FLOPs (~99 tokens/parameter), laptop seq_len"),
    "smoke-29k": ShippedSpec(32, 1, 2, seq_len=64, flops=3e10, eval_sequences=32,
                             about="tiny, for the smoke profile (CI): trains in seconds"),
    # Notebook 04's closing pair, planned by `cot_lab.inference.closing.closing_pair` from the shipped laptop law of
    # notebook 02 (a test ties these FLOPs to it): at one target loss (3.1999 nats/token), the ladder rung that is
    # compute-optimal for it, and the rung below trained on the tokens the law says bring it to the same loss.
    "lifetime-67k": ShippedSpec(32, 4, 4, seq_len=128, flops=3.105e12, eval_sequences=128, corpus="synthetic-v3",
                                about="compute-optimal for notebook 04's target loss (~76 tokens/parameter)"),
    "lifetime-33k": ShippedSpec(24, 3, 3, seq_len=128, flops=9.386e12, eval_sequences=128, corpus="synthetic-v3",
                                about="over-trained to notebook 04's target loss (~886 tokens/parameter)"),
}


def models_dir(root: str | os.PathLike | None = None) -> Path:
    """The folder of shipped models: `root`, else `models/` in the shipped data (`$COT_LAB_DATA` or the package)."""
    return Path(root) if root is not None else data_root() / MODELS_DIR


def _manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def shipped_models(root: str | os.PathLike | None = None) -> list[str]:
    """Names of the models shipped in `root` (default: the package's), sorted."""
    return sorted(_manifest(models_dir(root)).get("models", {}))


def shipped_model(name: str, root: str | os.PathLike | None = None):
    """The shipped model called `name` and its training record: (model on CPU in eval mode, cl.Run).

    Both files are checked against the sha256 in the manifest first; a file that changed raises ValueError.
    """
    from cot_lab.core.checkpoint import load_model

    folder = models_dir(root)
    entries = _manifest(folder).get("models", {})
    if not isinstance(name, str) or name not in entries:
        raise ValueError(f"name={name!r} is not a shipped model; shipped: {sorted(entries) or 'none'} "
                         f"(in {folder}; build one with `python -m cot_lab.core.shipped build NAME`)")
    for file, digest in entries[name]["files"].items():
        if sha256_file(folder / file) != digest:
            raise ValueError(f"{folder / file} does not match the sha256 in {folder / MANIFEST}: it changed after "
                             f"it was built; restore it from git or rebuild it with "
                             f"`python -m cot_lab.core.shipped build {name}`")
    run = Run.from_record(json.loads((folder / f"{name}.json").read_text()))
    run.from_store = True
    run._model = load_model(folder / f"{name}.safetensors")
    return run._model, run


def build_shipped_model(name: str, *, out: str | os.PathLike | None = None, store: RunStore | None = None,
                        progress: bool = True) -> Run:
    """Train the shipped model `name` (a spec of SPECS) with `cl.train` and write it, its record and the manifest.

    out: the models folder to write (default: the package's); store: a RunStore that keeps the run, so a
    rebuild after an interruption resumes (a finished run returns from it at once). Returns the Run.
    """
    from cot_lab.core.checkpoint import save_model
    from cot_lab.core.training import train
    from cot_lab.data import load_corpus

    if name not in SPECS:
        raise ValueError(f"name={name!r} has no spec; buildable: {sorted(SPECS)}")
    spec = SPECS[name]
    corpus = load_corpus(spec.corpus)
    run = train(spec.config(corpus.vocab_size), corpus, flops=spec.flops, seed=spec.seed,
                batch_size=spec.batch_size(), eval_sequences=spec.eval_sequences, store=store, progress=progress)
    if run.status != "ok":
        raise RuntimeError(f"the {name} run ended {run.status!r}; nothing was written (build it again to resume)")
    folder = models_dir(out)
    save_model(run.load_model(), folder / f"{name}.safetensors", metadata={"run_id": run.run_id, "shipped": name})
    write_json(folder / f"{name}.json", shipped_record(run))
    manifest = _manifest(folder) or {"models": {}}
    manifest["models"][name] = dict(
        run_id=run.run_id, n_params=run.n_params, tokens=run.tokens, flops=run.flops,
        final_val_loss=run.final_val_loss, train_s=run.train_s, device_name=run.device_name, about=spec.about,
        built_at=now_iso(), files={f: sha256_file(folder / f) for f in (f"{name}.safetensors", f"{name}.json")})
    write_json(folder / MANIFEST, manifest)
    return run


def main(argv: list[str] | None = None) -> int:
    """`python -m cot_lab.core.shipped build NAME [--store DIR] [--out DIR]`, or `list`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cot_lab.core.shipped", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="train a shipped model with cl.train and write it into the package")
    build.add_argument("name", choices=sorted(SPECS))
    build.add_argument("--store", default=None, help="a RunStore folder, so an interrupted build resumes")
    build.add_argument("--out", default=None, help="models folder to write (default: the package's)")
    sub.add_parser("list", help="the shipped models and their manifest entries")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, entry in sorted(_manifest(models_dir()).get("models", {}).items()):
            print(f"{name}: {entry['n_params']:,} params, {entry['tokens']:,} tokens, {entry['flops']:.3g} FLOPs, "
                  f"val loss {entry['final_val_loss']:.4f}")
        return 0
    run = build_shipped_model(args.name, out=args.out, store=RunStore(args.store) if args.store else None)
    print(f"{args.name}: {run.n_params:,} params, {run.tokens:,} tokens, {run.flops:.3g} FLOPs, "
          f"val loss {run.final_val_loss:.4f}, {run.train_s:.0f} s training -> {models_dir(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
