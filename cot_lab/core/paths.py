"""Where cot-lab keeps its files: one root, `COT_LAB_HOME`, never the working directory."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cot-lab data root: `$COT_LAB_HOME`, else the user's cache dir (e.g. ~/.cache/cot-lab)."""
    env = os.environ.get("COT_LAB_HOME")
    if env:
        root = Path(env).expanduser()
    else:
        from platformdirs import user_cache_dir

        root = Path(user_cache_dir("cot-lab", appauthor=False))
    root.mkdir(parents=True, exist_ok=True)
    return root


def subdir(name: str) -> Path:
    """A named folder under `home()`, created on first use (e.g. "tokenizers", "runs")."""
    path = home() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
