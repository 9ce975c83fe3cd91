"""Write-then-rename: a reader (another notebook, a second worker) sees the old file or the whole new one.

The temporary file sits in the target's folder (a rename across file systems would not be atomic)
and is removed if anything goes wrong, so an error or the Stop button leaves nothing half-written.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on a clean exit it replaces `path` (permissions `mode`)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, mode)  # mkstemp makes 0600; a shared cache should be readable by others
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj, *, indent: int | None = 1) -> Path:
    """Write `obj` as JSON to `path` atomically (keys sorted, so equal objects give equal files)."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=True) + "\n")
