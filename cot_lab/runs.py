"""Runs and the run store: SQLite (WAL) for records, safetensors for weights, keyed by content hash.

A run's key hashes everything that decides its result (config, corpus fingerprint, budget,
seed, hyperparameters, precision, device type), so asking for the same training twice returns
the stored run at once. Two notebooks writing at once are safe: SQLite serialises writers,
checkpoints are written to a temporary file and renamed into place before their row commits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ModelConfig
from .paths import subdir

STATUSES = ("ok", "interrupted", "diverged")
KEY_VERSION = 1  # bump when the trainer changes in a way that changes results


def run_key(spec: dict[str, Any]) -> str:
    """Content hash (hex, 20 chars) of a JSON-able spec of everything that decides a run's result."""
    canonical = json.dumps({"key_version": KEY_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


@dataclass
class Run:
    """One training run: what was asked, what happened, and how to get the model back.

    Units: tokens (trained target tokens), flops (training FLOPs, Chinchilla App. F count),
    wall_s / train_s (seconds; train_s excludes evaluation), losses in nats/token.
    Curves are lists of [step, tokens, loss].
    """

    run_id: str
    config: ModelConfig
    corpus: str
    corpus_fingerprint: str
    budget: dict  # {"kind": "flops"|"tokens"|"seconds", "value": float}
    hparams: dict
    status: str = "ok"
    steps: int = 0
    tokens: int = 0
    flops: float = 0.0
    wall_s: float = 0.0
    train_s: float = 0.0
    train_curve: list = field(default_factory=list)
    val_curve: list = field(default_factory=list)
    final_val_loss: float = float("nan")
    entropy: float | None = None
    device: str = "cpu"
    device_name: str = ""
    precision: str = "fp32"
    versions: dict = field(default_factory=dict)
    created_at: str = ""
    from_store: bool = False
    _model: Any = field(default=None, repr=False, compare=False)
    _store: "RunStore | None" = field(default=None, repr=False, compare=False)

    @property
    def n_params(self) -> int:
        from .accounting import count_params

        return count_params(self.config).total

    def load_model(self):
        """The trained model (a transformers PreTrainedModel on CPU, eval mode), from memory or the store's checkpoint."""
        if self._model is not None:
            return self._model
        if self._store is None:
            raise ValueError(f"run {self.run_id} has no model in memory and no store; train it with store=RunStore()")
        return self._store.load_model(self.run_id)

    def to_record(self) -> dict:
        """A JSON-able dict of the run (no model)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.name.startswith("_")}
        record["config"] = self.config.to_dict()
        record.pop("from_store")
        return record

    @classmethod
    def from_record(cls, record: dict) -> "Run":
        record = dict(record)
        record["config"] = ModelConfig(**record["config"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    corpus TEXT NOT NULL,
    n_params INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    flops REAL NOT NULL,
    final_val_loss REAL,
    has_checkpoint INTEGER NOT NULL,
    record TEXT NOT NULL
)
"""


class RunStore:
    """Persistent runs: `<root>/runs.sqlite` (WAL) and `<root>/checkpoints/<run_id>.safetensors`.

    `root` defaults to `$COT_LAB_HOME/runs` (see `cot_lab.paths.home`).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        if root is None:
            self.root = subdir("runs")
        else:
            self.root = Path(root).expanduser()
            if self.root.exists() and not self.root.is_dir():
                raise ValueError(f"root={str(root)!r} is a file; RunStore needs a folder (it is created if missing)")
            self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "checkpoints").mkdir(exist_ok=True)
        self.db_path = self.root / "runs.sqlite"
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(_SCHEMA)

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r}, {len(self)} runs)"

    def _connect(self) -> "_Closing":
        # A generous busy timeout lets concurrent writers queue instead of failing with "database is locked".
        con = sqlite3.connect(self.db_path, timeout=60.0, isolation_level=None)
        con.execute("PRAGMA busy_timeout=60000")
        return _Closing(con)

    def checkpoint_path(self, run_id: str) -> Path:
        return self.root / "checkpoints" / f"{run_id}.safetensors"

    def save(self, run: Run, model=None) -> None:
        """Record `run` (replacing an earlier record with the same id), with its weights when `model` is given."""
        has_checkpoint = False
        if model is not None:
            self._write_checkpoint(run.run_id, model)
            has_checkpoint = True
        record = json.dumps(run.to_record(), default=float)
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                (run.run_id, run.status, run.created_at, run.corpus, run.n_params, run.tokens, run.flops,
                 _finite_or_none(run.final_val_loss), int(has_checkpoint), record),
            )
            con.execute("COMMIT")
        run._store = self

    def _write_checkpoint(self, run_id: str, model) -> None:
        from safetensors.torch import save_model

        final = self.checkpoint_path(run_id)
        fd, tmp = tempfile.mkstemp(dir=final.parent, suffix=".tmp")
        os.close(fd)
        try:
            save_model(model, tmp, metadata={"run_id": run_id})
            os.replace(tmp, final)  # atomic: readers see the old file or the whole new one
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def get(self, run_id: str) -> Run | None:
        """The stored run with this id, or None."""
        with self._connect() as con:
            row = con.execute("SELECT record FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            return None
        run = Run.from_record(json.loads(row[0]))
        run.from_store = True
        run._store = self
        return run

    def load_model(self, run_id: str):
        """Rebuild the model of a stored run from its safetensors checkpoint (CPU, eval mode)."""
        from safetensors.torch import load_model

        from .config import build_model

        run = self.get(run_id)
        path = self.checkpoint_path(run_id)
        if run is None or not path.exists():
            raise FileNotFoundError(f"no checkpoint for run_id={run_id!r} in {self.root}")
        model = build_model(run.config)
        load_model(model, path)
        return model.eval()

    def runs(self, status: str | None = None) -> list[Run]:
        """All stored runs (optionally only those with `status`), oldest first."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status={status!r} is not known; use one of {STATUSES} or None")
        query, args = "SELECT run_id FROM runs ORDER BY created_at", ()
        if status is not None:
            query, args = "SELECT run_id FROM runs WHERE status=? ORDER BY created_at", (status,)
        with self._connect() as con:
            ids = [r[0] for r in con.execute(query, args).fetchall()]
        return [self.get(i) for i in ids]

    def delete(self, run_id: str) -> None:
        """Remove a run and its checkpoint."""
        with self._connect() as con:
            con.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
        self.checkpoint_path(run_id).unlink(missing_ok=True)

    def __len__(self) -> int:
        with self._connect() as con:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    def __contains__(self, run_id: str) -> bool:
        with self._connect() as con:
            return con.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is not None

    def to_frame(self):
        """A pandas DataFrame, one row per run: id, status, corpus, shape, n_params, tokens, flops, losses, times."""
        import pandas as pd

        rows = []
        for run in self.runs():
            cfg = run.config
            rows.append(dict(
                run_id=run.run_id, status=run.status, corpus=run.corpus, arch=cfg.arch, d_model=cfg.d_model,
                n_layer=cfg.n_layer, n_head=cfg.n_head, n_params=run.n_params, tokens=run.tokens, flops=run.flops,
                budget_kind=run.budget["kind"], budget=run.budget["value"], seed=run.hparams.get("seed"),
                final_val_loss=run.final_val_loss, entropy=run.entropy, wall_s=run.wall_s, device=run.device,
                precision=run.precision, created_at=run.created_at,
            ))
        return pd.DataFrame(rows)


class _Closing:
    """sqlite3's own context manager commits but never closes; this one closes."""

    def __init__(self, con: sqlite3.Connection):
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        return self.con

    def __exit__(self, *exc) -> None:
        self.con.close()


def _finite_or_none(x: float) -> float | None:
    return x if x == x and abs(x) != float("inf") else None


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
