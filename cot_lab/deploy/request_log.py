"""Every request a served model answers, one row each, in SQLite: what the monitoring of notebook 08 reads.

    log = RequestLog(path)            # created if missing; WAL, so a notebook can read while the server writes
    log.record(endpoint="score", route="champion", version=3, status=200, latency_ms=4.2, tokens=40, loss=3.1)
    log.frame()                       # pandas DataFrame, one row per request, oldest first
    log.latency_percentiles((50, 99)) # {50: ms, 99: ms} over the requests answered (shadow copies excluded)
    log.error_rate()                  # share of answered requests with status >= 400, in [0, 1]
    log.counts_by_version()           # {version: requests} answered by each model version

Columns of the `requests` table: time (unix seconds), endpoint ("score", "generate", "health", ...), route
("champion", "canary", "pinned", "shadow", or NULL where no model was chosen), version (the model version that
produced the answer, NULL where none did), status (HTTP code), latency_ms (milliseconds inside the server, from
the request's arrival to its response; for a shadow row, the challenger's own compute time), tokens (tokens of
the request's text; for generate, of the prompt), new_tokens (generate), loss (score: nats/token), error (the
message of a 4xx/5xx, else NULL).

A "shadow" row is the challenger's background copy of a champion request: never returned to the client, so it
is left out of the latency, error and count summaries unless route="shadow" is asked for.
"""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np

COLUMNS = ("time", "endpoint", "route", "version", "status", "latency_ms", "tokens", "new_tokens", "loss", "error")
SHADOW = "shadow"

_SCHEMA = """CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL, endpoint TEXT NOT NULL, route TEXT, version INTEGER, status INTEGER NOT NULL,
    latency_ms REAL NOT NULL, tokens INTEGER, new_tokens INTEGER, loss REAL, error TEXT)"""


class RequestLog:
    """The request log at `path` (a SQLite file, created with its folder if missing; an existing log is appended to).

    Thread-safe: one connection, and a lock around every statement, so the server's threads and a notebook
    cell can share one RequestLog. WAL journaling lets another process (another RequestLog on the same file)
    read while this one writes.
    """

    def __init__(self, path: str | os.PathLike):
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise ValueError(f"path={path!r} must be a file path for the SQLite request log, e.g. 'requests.sqlite'")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # check_same_thread=False: the lock, not the thread, makes each use exclusive
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30.0)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: no fsync per request, still crash-safe
            self._db.execute(_SCHEMA)
            self._db.commit()

    def record(self, *, endpoint: str, status: int, latency_ms: float, route: str | None = None,
               version: int | None = None, tokens: int | None = None, new_tokens: int | None = None,
               loss: float | None = None, error: str | None = None, at: float | None = None) -> None:
        """Append one request: latency_ms in milliseconds, loss in nats/token, at in unix seconds (default now)."""
        row = (time.time() if at is None else float(at), str(endpoint), route, None if version is None else int(version),
               int(status), float(latency_ms), None if tokens is None else int(tokens),
               None if new_tokens is None else int(new_tokens), None if loss is None else float(loss), error)
        with self._lock:
            self._db.execute(f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                             row)
            self._db.commit()

    def _rows(self, where: str = "", args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM requests {where} ORDER BY id", args).fetchall()

    @staticmethod
    def _answered(route: str | None, endpoint: str | None = None) -> tuple[str, tuple]:
        """The WHERE clause of the summaries: one route, or every row the client saw (all but shadow copies)."""
        # IS NOT is SQL's null-safe inequality: rows with no route (no model chosen) count as answered
        clauses, args = (["route = ?"], [route]) if route is not None else (["route IS NOT ?"], [SHADOW])
        if endpoint is not None:
            clauses.append("endpoint = ?")
            args.append(endpoint)
        return "WHERE " + " AND ".join(clauses), tuple(args)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def frame(self):
        """A pandas DataFrame of every row (shadow copies included), oldest first; `time` as UTC timestamps."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        df = pd.DataFrame(self._rows(), columns=list(COLUMNS))
        df["time"] = pd.to_datetime(df["time"], unit="s", utc=True)
        for column in ("version", "tokens", "new_tokens"):
            df[column] = df[column].astype("Int64")  # nullable: an error row has no version
        return df

    def latency_percentiles(self, percentiles=(50, 99), *, route: str | None = None,
                            endpoint: str | None = None) -> dict[float, float]:
        """{percentile: latency in ms} over the answered requests (or one route's, or one endpoint's); NaN if none."""
        qs = tuple(float(q) for q in np.atleast_1d(np.asarray(percentiles, dtype=np.float64)))
        if not qs or any(not 0 <= q <= 100 for q in qs):
            raise ValueError(f"percentiles={percentiles!r} must be numbers in [0, 100], e.g. (50, 99)")
        where, args = self._answered(route, endpoint)
        latencies = np.array([r[COLUMNS.index("latency_ms")] for r in self._rows(where, args)], dtype=np.float64)
        if latencies.size == 0:
            return {q: float("nan") for q in qs}
        return {q: float(v) for q, v in zip(qs, np.percentile(latencies, qs))}

    def error_rate(self, *, route: str | None = None, server_only: bool = False) -> float:
        """The share (in [0, 1]) of answered requests with status >= 400 (>= 500 with server_only); NaN if none."""
        where, args = self._answered(route)
        statuses = np.array([r[COLUMNS.index("status")] for r in self._rows(where, args)], dtype=np.int64)
        return float(np.mean(statuses >= (500 if server_only else 400))) if statuses.size else float("nan")

    def counts_by_version(self, *, route: str | None = None) -> dict[int | None, int]:
        """{version: requests} over the answered requests (or one route's); None counts rows no model produced."""
        where, args = self._answered(route)
        with self._lock:
            rows = self._db.execute(f"SELECT version, COUNT(*) FROM requests {where} GROUP BY version ORDER BY version",
                                    args).fetchall()
        return {(None if v is None else int(v)): int(n) for v, n in rows}

    def close(self) -> None:
        """Close the connection (idempotent); the file stays, and a new RequestLog on it appends."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __repr__(self) -> str:
        return f"RequestLog({str(self.path)!r}, {len(self) if self._db is not None else 'closed'} rows)"
