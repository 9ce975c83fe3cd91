"""Runs and the run store: SQLite (WAL) for records, safetensors for weights, keyed by content hash.

A run's key hashes everything that decides its result (config, corpus fingerprint, budget,
seed, hyperparameters, precision, device type), so asking for the same training twice returns
the stored run at once. Lookups are indexed queries that decode only the record they return: by key
(`get`), or the newest run with given settings with the corpus by name (`settings_key`), or on a device
(`newest`), so a panel's slider move does not slow down as the store grows. Two notebooks writing at
once are safe: SQLite serialises writers, checkpoints are written to a temporary file and renamed into
place before their row commits.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cot_lab.core.checkpoint import FORMAT, load_model, read_metadata, save_model
from cot_lab.core.config import ModelConfig, build_model
from cot_lab.core.paths import home

STATUSES = ("ok", "interrupted", "diverged")
KEY_VERSION = 1  # bump when the trainer changes in a way that changes results
# Recorded hparams that change how a run was computed, not its result: never part of a key.
# micro_batch_size: how a step is split; group_size: how many runs trained with it as one batched computation.
NOT_KEYED = ("micro_batch_size", "group_size")


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
        from cot_lab.core.accounting import count_params

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
    record TEXT NOT NULL,
    settings_key TEXT,
    device TEXT,
    device_name TEXT,
    wall_s REAL
)
"""
# Columns added in schema version 1, so that a panel finds a run without decoding every record:
# stores written before them get them on open (ALTER TABLE, then one backfill from the records).
_ADDED_COLUMNS = (("settings_key", "TEXT"), ("device", "TEXT"), ("device_name", "TEXT"), ("wall_s", "REAL"))
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_by_settings ON runs(settings_key, status, created_at)",
    "CREATE INDEX IF NOT EXISTS runs_by_device ON runs(device, device_name, status, created_at)",
)
SCHEMA_VERSION = 1  # PRAGMA user_version of a store whose columns and indexes are all there
_COLUMNS = ("run_id", "status", "created_at", "corpus", "n_params", "tokens", "flops", "final_val_loss",
            "has_checkpoint", "record", "settings_key", "device", "device_name", "wall_s")


def settings_key(spec: dict[str, Any]) -> str:
    """A hash like `run_key` of a run's settings, with the corpus named by its *name* instead of its fingerprint.

    `spec` has the keys of `RunPlan.spec` (config, corpus, budget, hparams, precision, device) or is a
    run's record (whose `corpus` is the name). It finds a run in the store when the corpus is not loaded
    yet, so its fingerprint is unknown (a panel's dropdown can name "python-docs" before its tokenizer is
    built). NOT_KEYED settings are left out, as in the run key.
    """
    hparams = {k: v for k, v in dict(spec["hparams"]).items() if k not in NOT_KEYED}
    named = dict(corpus_by="name", config=spec["config"], corpus=spec["corpus"], budget=spec["budget"],
                 hparams=hparams, precision=spec["precision"], device=spec["device"])
    return run_key(named)


def _indexed(record: dict) -> tuple:
    """(settings_key, device, device_name, wall_s) of a decoded record, for the indexed columns."""
    try:
        key = settings_key(record)
    except (KeyError, TypeError, ValueError):  # a record too old or too odd to key: never found by settings
        key = ""
    wall_s = record.get("wall_s")
    return key, record.get("device"), record.get("device_name"), wall_s if isinstance(wall_s, (int, float)) else None


def default_root() -> Path:
    """Where `RunStore()` keeps its runs: `$COT_LAB_HOME/runs` (not created here)."""
    return home() / "runs"


class RunStore:
    """Persistent runs: `<root>/runs.sqlite` (WAL) and `<root>/checkpoints/<run_id>.safetensors`.

    `root` defaults to `$COT_LAB_HOME/runs` (see `cot_lab.paths.home`). With `create=False` a store
    that does not exist yet is a FileNotFoundError instead of a new, empty one: what a reader of
    runs wants, since a mistyped path would otherwise read as "no runs". `created` says whether
    this call made the database.
    """

    def __init__(self, root: str | os.PathLike | None = None, *, create: bool = True):
        # the folder is made only once the checks below pass, so that a refused store leaves nothing behind
        self.root = default_root() if root is None else Path(root).expanduser()
        self.db_path = self.root / "runs.sqlite"
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"root={str(self.root)!r} is a file; RunStore needs a folder (it is created if missing)")
        if not create and not self.db_path.is_file():
            raise FileNotFoundError(f"root={str(self.root)!r} holds no run store (no runs.sqlite); give a folder that "
                                    "a training or a sweep wrote, or RunStore(root, create=True) to start one")
        self.created = not self.db_path.exists()
        (self.root / "checkpoints").mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                _migrate(con)

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
        indexed = _indexed(json.loads(record))  # from the record as stored, so that a backfill computes the same
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(
                f"INSERT OR REPLACE INTO runs ({','.join(_COLUMNS)}) VALUES ({','.join('?' * len(_COLUMNS))})",
                (run.run_id, run.status, run.created_at, run.corpus, run.n_params, run.tokens, run.flops,
                 _finite_or_none(run.final_val_loss), int(has_checkpoint), record, *indexed),
            )
            con.execute("COMMIT")
        run._store = self

    def _write_checkpoint(self, run_id: str, model) -> None:
        save_model(model, self.checkpoint_path(run_id), metadata={"run_id": run_id})

    def get(self, run_id: str, status: str | None = None) -> Run | None:
        """The stored run with this id (and, if given, this status), or None. One indexed row, one record decoded."""
        _check_status(status)
        query, args = "SELECT record FROM runs WHERE run_id=?", (run_id,)
        if status is not None:
            query, args = query + " AND status=?", (run_id, status)
        with self._connect() as con:
            row = con.execute(query, args).fetchone()
        return None if row is None else self._from_row(row[0])

    def newest(self, status: str | None = "ok", *, settings: str | None = None, device: str | None = None,
               device_name: str | None = None, timed: bool = False) -> Run | None:
        """The most recently created run matching every filter given, or None; one query, one record decoded.

        Indexed (it reads no other row) when `settings` or `device` is given, as the panels' lookups do.

        settings: a `settings_key(...)` (the run's settings with the corpus by name); device: a device
        type ("cpu", "cuda", "mps"); device_name: as `cl.device_name()` writes it; timed: only runs with
        wall_s > 0 and flops > 0 (whose speed can calibrate a time estimate).
        """
        _check_status(status)
        where, args = [], []
        for column, value in (("status", status), ("settings_key", settings), ("device", device),
                              ("device_name", device_name)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if timed:
            where.append("wall_s > 0 AND flops > 0")
        query = ("SELECT record FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
                 + " ORDER BY created_at DESC, rowid DESC LIMIT 1")
        with self._connect() as con:
            row = con.execute(query, args).fetchone()
        return None if row is None else self._from_row(row[0])

    def speeds(self, device: str, device_name: str) -> list[tuple[int, float]]:
        """(parameters, FLOP/s of wall time) of every finished, timed run on this device: one indexed query,
        no record decoded, so a panel can calibrate its time estimate on every slider move."""
        with self._connect() as con:
            rows = con.execute("SELECT n_params, flops, wall_s FROM runs WHERE device=? AND device_name=? AND "
                               "status='ok' AND wall_s > 0 AND flops > 0", (device, device_name)).fetchall()
        return [(int(n), float(flops) / float(wall)) for n, flops, wall in rows]

    def _from_row(self, record: str) -> Run:
        run = Run.from_record(json.loads(record))
        run.from_store = True
        run._store = self
        return run

    def load_model(self, run_id: str):
        """The model of a stored run, from its checkpoint (CPU, eval mode); the same file `cl.load_model` opens."""
        run = self.get(run_id)
        path = self.checkpoint_path(run_id)
        if run is None or not path.exists():
            raise FileNotFoundError(f"no checkpoint for run_id={run_id!r} in {self.root}")
        if read_metadata(path).get("format") == FORMAT:
            return load_model(path)
        # written before checkpoints carried their config: the record has it
        from safetensors.torch import load_model as st_load

        model = build_model(run.config)
        st_load(model, path)
        return model.eval()

    def runs(self, status: str | None = None) -> list[Run]:
        """All stored runs (optionally only those with `status`), oldest first."""
        _check_status(status)
        query, args = "SELECT record FROM runs ORDER BY created_at", ()
        if status is not None:
            query, args = "SELECT record FROM runs WHERE status=? ORDER BY created_at", (status,)
        with self._connect() as con:
            records = [r[0] for r in con.execute(query, args).fetchall()]
        return [self._from_row(record) for record in records]

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


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"status={status!r} is not known; use one of {STATUSES} or None")


def _migrate(con: sqlite3.Connection) -> None:
    """Bring a store to SCHEMA_VERSION: create the table, add missing columns, backfill them once, index them.

    One IMMEDIATE transaction, so two notebooks opening an old store at once queue: the second finds the
    work done (user_version is read again inside the transaction) and a failure leaves the store as it was.
    """
    con.execute("BEGIN IMMEDIATE")
    try:
        if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            con.execute(_SCHEMA)
            have = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
            for name, kind in _ADDED_COLUMNS:
                if name not in have:
                    con.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
            rows = con.execute("SELECT run_id, record FROM runs WHERE settings_key IS NULL").fetchall()
            for run_id, record in rows:
                try:
                    indexed = _indexed(json.loads(record))
                except (ValueError, AttributeError):  # an unreadable record: index it as unfindable rather than refuse the store
                    indexed = ("", None, None, None)
                con.execute("UPDATE runs SET settings_key=?, device=?, device_name=?, wall_s=? WHERE run_id=?",
                            (*indexed, run_id))
            for statement in _INDEXES:
                con.execute(statement)
            con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _finite_or_none(x: float) -> float | None:
    return x if x == x and abs(x) != float("inf") else None


def now_iso() -> str:
    """UTC time with microseconds, e.g. '2024-05-01T12:00:00.123456Z': sorts as it happened (`newest` relies on it)."""
    t = time.time()  # one reading for both parts, so a second boundary cannot fall between them
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1_000_000:06d}Z"
