"""What the model registry records about a version, and the MLflow plumbing it shares with serving.

`Lineage.of(source, corpus, ...)` checks a registration's inputs and reads its lineage (run id, config hash and
JSON, corpus name and fingerprint, final validation loss); `ModelVersion` is a complete version as
`cot_lab.deploy.registry` reads it back from MLflow's version tags. `require_mlflow()` imports MLflow when it is
used (never on `import cot_lab`), `quiet_mlflow()` keeps its INFO lines out of a notebook.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from cot_lab.core.quiet import quiet_loggers

TAG = "cot_lab."                 # every tag and param the registry writes starts with it
NOISY_LOGGERS = ("mlflow", "alembic")


class DeployExtraMissing(ImportError):
    """The `deploy` extra (MLflow, FastAPI, uvicorn, httpx) is not installed."""


def quiet_mlflow():
    """Within the block, MLflow's and alembic's loggers show warnings and errors only; Python warnings are ignored.

    MLflow logs "Creating initial MLflow database tables..." and the like at INFO, which says nothing to a student.
    """
    return quiet_loggers(NOISY_LOGGERS, logging.WARNING)


def require_mlflow():
    """The mlflow module, imported now; DeployExtraMissing (an ImportError) saying what to install if it is missing."""
    try:
        with quiet_mlflow():
            import mlflow
            from mlflow import MlflowClient  # noqa: F401  (the client's modules, imported quietly too)
    except ImportError as error:
        raise DeployExtraMissing(f'the model registry needs MLflow ({error}): pip install "cot-lab[deploy]"') from error
    return mlflow


def config_json(config) -> str:
    """A ModelConfig as canonical JSON (sorted keys): what the config hash hashes."""
    return json.dumps(config.to_dict(), sort_keys=True)


def config_hash_of(config) -> str:
    """Hex sha256 (16 chars) of a ModelConfig's canonical JSON: the same number as cot_lab.core.results.config_hash
    of a Run with this config, for a model registered without its Run too."""
    return hashlib.sha256(config_json(config).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelVersion:
    """One complete registered version: its number and lineage. final_val_loss in nats/token (None if unknown);
    created_at is UTC ISO time; sha256 is the hex digest of the safetensors file at `path`."""
    version: int
    run_id: str | None               # the cot_lab run id, None for a model registered without its Run
    config_hash: str                 # sha256 (16 hex) of the model config JSON (sorted keys)
    corpus: str                      # the corpus name serving loads (cl.load_corpus) to encode text
    corpus_fingerprint: str
    sha256: str
    created_at: str
    final_val_loss: float | None
    evaluation: dict | None          # e.g. a GateReport's to_dict()
    datasheet: str | None            # Markdown
    description: str
    config: dict | None = None       # the ModelConfig fields (cot_lab.core.config)
    path: str = ""                   # the safetensors file

    def to_dict(self) -> dict:
        """A JSON-able dict of every field."""
        return asdict(self)

    @classmethod
    def from_tags(cls, version: int, tags: dict, description: str, root: Path) -> "ModelVersion":
        """The version from its MLflow version tags; evaluation and datasheet from their files next to the model."""
        path = root / tags[TAG + "artifact"]
        folder = path.parent
        evaluation = json.loads((folder / "evaluation.json").read_text()) if tags.get(TAG + "evaluation") else None
        datasheet = (folder / "datasheet.md").read_text(encoding="utf-8") if tags.get(TAG + "datasheet") else None
        loss = tags.get(TAG + "final_val_loss")
        return cls(version=version, run_id=tags.get(TAG + "run_id"), config_hash=tags[TAG + "config_hash"],
                   corpus=tags[TAG + "corpus"], corpus_fingerprint=tags[TAG + "corpus_fingerprint"],
                   sha256=tags[TAG + "sha256"], created_at=tags[TAG + "created_at"],
                   final_val_loss=float(loss) if loss else None, evaluation=evaluation, datasheet=datasheet,
                   description=description or "", config=json.loads(tags[TAG + "config"]), path=str(path))


@dataclass(frozen=True)
class Lineage:
    """A registration's checked inputs: the model to save and what is recorded about it."""
    model: object
    run_id: str | None
    config: object                   # ModelConfig of the model as it is (cot_lab.core.config.config_of)
    corpus: str
    corpus_fingerprint: str
    final_val_loss: float | None
    evaluation: dict | None
    datasheet: str | None
    description: str

    @classmethod
    def of(cls, source, corpus, evaluation, datasheet, description) -> "Lineage":
        """Check `register`'s arguments (ValueError naming the one that is wrong) and read the lineage."""
        model, run = _source(source)
        from cot_lab.core.config import config_of

        config = config_of(model)
        name, fingerprint = _corpus(corpus, config.vocab_size, run)
        loss = getattr(run, "final_val_loss", None)
        loss = float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else None
        if not isinstance(description, str):
            raise ValueError(f"description={description!r} must be text (a line on what this version is), or ''")
        return cls(model, run.run_id if run is not None else None, config, name, fingerprint, loss,
                   _evaluation(evaluation), _datasheet(datasheet), description)

    def tags(self, sha256: str, artifact: str, created_at: str) -> dict[str, str]:
        """The version's lineage as MLflow tags (strings); what is unknown or absent is left out."""
        tags = {"config_hash": config_hash_of(self.config), "config": config_json(self.config), "corpus": self.corpus,
                "corpus_fingerprint": self.corpus_fingerprint, "sha256": sha256, "artifact": artifact,
                "created_at": created_at}
        if self.evaluation is not None:  # the report and the datasheet are files next to the model
            tags["evaluation"] = "evaluation.json"
        if self.datasheet is not None:
            tags["datasheet"] = "datasheet.md"
        if self.run_id is not None:
            tags["run_id"] = self.run_id
        if self.final_val_loss is not None:
            tags["final_val_loss"] = repr(self.final_val_loss)
        return {TAG + k: v for k, v in tags.items()}


def _source(source):
    """(model, Run or None) of `source`: a cl.Run with weights, or a cot-lab model."""
    import torch

    run = None
    if hasattr(source, "run_id") and hasattr(source, "load_model"):
        run = source
        try:
            source = run.load_model()
        except (ValueError, FileNotFoundError) as error:
            raise ValueError(f"source=Run {run.run_id}: its weights do not load ({error})") from None
    kinds = ("LlamaForCausalLM", "MixtralForCausalLM")
    if not isinstance(source, torch.nn.Module) or type(source).__name__ not in kinds:
        raise ValueError(f"source={type(source).__name__} must be a cl.Run with weights (trained with a store, or "
                         "cl.shipped_model's) or a model from cl.build_model / cl.load_model")
    return source, run


def _corpus(corpus, vocab_size: int, run) -> tuple[str, str]:
    """(name, fingerprint) of `corpus`, a Corpus or a name, checked against the model's vocabulary and the run."""
    if isinstance(corpus, str):
        from cot_lab.data import load_corpus

        if not corpus:
            raise ValueError("corpus='' must name the corpus the model reads, e.g. 'synthetic-v3', or be a cl.Corpus")
        corpus = load_corpus(corpus)
    if not all(hasattr(corpus, a) for a in ("name", "fingerprint", "vocab_size")):
        raise ValueError(f"corpus={type(corpus).__name__} must be a cl.Corpus or a corpus name, e.g. 'synthetic-v3'")
    if int(corpus.vocab_size) != vocab_size:
        raise ValueError(f"corpus={corpus.name!r} has {corpus.vocab_size} token ids and the model reads {vocab_size}: "
                         "give the corpus the model was trained on")
    trained_on = getattr(run, "corpus_fingerprint", None)
    if trained_on and trained_on != corpus.fingerprint:
        raise ValueError(f"corpus={corpus.name!r} has fingerprint {corpus.fingerprint} and run {run.run_id} was "
                         f"trained on {run.corpus!r}, fingerprint {trained_on}: give the run's own corpus")
    return str(corpus.name), str(corpus.fingerprint)


def _evaluation(evaluation) -> dict | None:
    if evaluation is None:
        return None
    if hasattr(evaluation, "to_dict") and hasattr(evaluation, "passed"):
        evaluation = evaluation.to_dict()
    try:
        if not isinstance(evaluation, dict):
            raise TypeError
        return json.loads(json.dumps(evaluation))
    except (TypeError, ValueError):
        raise ValueError(f"evaluation={type(evaluation).__name__} must be a GateReport (cl.evaluation_gate) or a "
                         "JSON-able dict, or None") from None


def _datasheet(datasheet) -> str | None:
    if datasheet is None:
        return None
    if hasattr(datasheet, "to_markdown"):
        datasheet = datasheet.to_markdown()
    if not isinstance(datasheet, str):
        raise ValueError(f"datasheet={type(datasheet).__name__} must be a Datasheet (cl.shipped_datasheet) or "
                         "Markdown text, or None")
    return datasheet
