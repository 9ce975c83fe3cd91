"""The JupyterLab server command line, in one place: `make lab` runs it, and the browser test starts the same.

    python -m cot_lab.lab                 # copies notebooks/ into work/ (once), opens work/00_start_here.ipynb
    python -m cot_lab.lab --root DIR --port 8888 --no-browser
    python -m cot_lab.lab --refresh 02_scaling_laws   # a fresh copy of one notebook (yours is kept aside)

JupyterLab saves every few minutes, outputs and answers included, into the notebook it has open. So
students work on copies in `work/` (git-ignored) and `notebooks/` stays as committed; a copy that
exists is never overwritten, only replaced on `--refresh`, and then the old one is kept beside it.

The widgets render through the prebuilt `jupyterlab_widgets` extension (installed with
ipywidgets 8); no build step and no network are needed, so it is checked before starting.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
START_NOTEBOOK = "notebooks/00_start_here.ipynb"
WORK_FOLDER = "work"  # the students' copies, beside notebooks/; in .gitignore
BEFORE_REFRESH = ".before-refresh.ipynb"  # suffix of a copy that --refresh set aside


def widgets_extension() -> Path:
    """Folder of the prebuilt ipywidgets JupyterLab extension; FileNotFoundError with the fix if it is missing."""
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("labextensions"):
        package = Path(base) / WIDGETS_EXTENSION / "package.json"
        if package.is_file() and json.loads(package.read_text()).get("jupyterlab", {}).get("_build"):
            return package.parent
    raise FileNotFoundError(f"the JupyterLab extension {WIDGETS_EXTENSION} is not installed in this environment "
                            f"({sys.prefix}); sliders would show as text. Install it with "
                            f"`{sys.executable} -m pip install 'ipywidgets>=8.1' jupyterlab_widgets` (or `make setup`)")


def lab_command(root_dir: str | os.PathLike, *, notebook: str | None = START_NOTEBOOK, port: int | None = None,
                token: str | None = None, open_browser: bool = True, ip: str = "127.0.0.1") -> list[str]:
    """argv that starts JupyterLab from this Python on `root_dir`, opening `notebook` (a path inside root_dir)."""
    root = Path(root_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"root_dir={str(root_dir)!r} is not a folder; give the folder that holds notebooks/")
    if notebook is not None and not (root / notebook).is_file():
        raise FileNotFoundError(f"notebook={notebook!r} is not a file under root_dir={str(root)!r}")
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={root}", f"--ServerApp.ip={ip}",
           # offline-friendly: no news feed, no update check (both fetch from the internet)
           "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if notebook is not None:
        cmd.append(f"--LabApp.default_url=/lab/tree/{Path(notebook).as_posix()}")
    if port is not None:
        cmd += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if token is not None:
        cmd.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI often run as root; Jupyter refuses root without it
    return cmd


class WorkCopies(NamedTuple):
    """What `work_copies` did, by notebook file name: copied (new), refreshed (replaced on request), kept."""

    folder: Path
    copied: list[str]
    refreshed: list[str]
    kept: list[str]


def work_copies(root: str | os.PathLike, *, refresh=()) -> WorkCopies:
    """Copy each `root/notebooks/*.ipynb` that has no copy in `root/work/` yet; an existing copy is kept.

    `refresh`: notebooks (by name, with or without `.ipynb`) whose copy is replaced by the committed
    one; the student's copy is first renamed to `<name>.before-refresh.ipynb`, so nothing is lost.
    """
    source = Path(root).expanduser().resolve() / "notebooks"
    committed = sorted(source.glob("*.ipynb"))
    if not committed:
        raise FileNotFoundError(f"root={str(root)!r} has no notebooks/*.ipynb; give the folder that holds notebooks/")
    names = [p.name for p in committed]
    if isinstance(refresh, str):
        refresh = [refresh]
    wanted = set()
    for name in refresh:
        file_name = name if str(name).endswith(".ipynb") else f"{name}.ipynb"
        if file_name not in names:
            raise ValueError(f"refresh={name!r} is not a notebook in {source}; choose from "
                             f"{', '.join(p.stem for p in committed)}")
        wanted.add(file_name)
    folder = source.parent / WORK_FOLDER
    folder.mkdir(exist_ok=True)
    done = WorkCopies(folder, [], [], [])
    for notebook in committed:
        copy = folder / notebook.name
        if copy.exists() and notebook.name not in wanted:
            done.kept.append(notebook.name)
            continue
        if copy.exists():
            os.replace(copy, folder / (notebook.stem + BEFORE_REFRESH))
            done.refreshed.append(notebook.name)
        else:
            done.copied.append(notebook.name)
        _copy_whole(notebook, copy)
    return done


def _copy_whole(source: Path, target: Path) -> None:
    """Copy through a temporary file in the target's folder, so an interrupt never leaves half a notebook."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        os.unlink(temporary)
        raise


def describe(copies: WorkCopies) -> str:
    """What a student reads before JupyterLab opens: which copies are new, which are theirs, how to refresh one."""
    lines = [f"your notebooks are in {copies.folder} (notebooks/ stays as committed)"]
    if copies.copied:
        lines.append(f"  copied now:     {', '.join(copies.copied)}")
    if copies.refreshed:
        lines.append(f"  refreshed:      {', '.join(copies.refreshed)} (your copy: <name>{BEFORE_REFRESH})")
    if copies.kept:
        lines.append(f"  yours, kept:    {', '.join(copies.kept)}")
        lines.append(f"  a fresh copy of one: --refresh {Path(copies.kept[0]).stem} (make lab REFRESH=...)")
    return "\n".join(lines)


def setup_notebook() -> None:
    """What every notebook's setup cell needs: inline matplotlib figures, and on Colab its widget manager.

    Colab renders ipywidgets 8 only through its custom widget manager; elsewhere JupyterLab's
    prebuilt extension does it. Outside IPython this does nothing.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    if "google.colab" in sys.modules:
        from google.colab import output

        output.enable_custom_widget_manager()
    shell.run_line_magic("matplotlib", "inline")


def _default_root() -> Path | None:
    """The checkout this package was installed from (editable install), if it has notebooks/."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / START_NOTEBOOK).is_file() else None


def main(argv: list[str] | None = None) -> None:
    """Entry point of `python -m cot_lab.lab`: copy the notebooks into work/, check the widgets extension,
    then exec JupyterLab on work/ in this process."""
    parser = argparse.ArgumentParser(prog="python -m cot_lab.lab", description="start JupyterLab on your copies "
                                     "of the course notebooks (in work/)")
    parser.add_argument("--root", type=Path, default=_default_root(), help="folder holding notebooks/")
    parser.add_argument("--notebook", default=Path(START_NOTEBOOK).name, help="notebook to open, in work/")
    parser.add_argument("--refresh", action="append", default=[], metavar="NOTEBOOK",
                        help="replace work/NOTEBOOK with the committed one (yours is renamed "
                             f"NOTEBOOK{BEFORE_REFRESH}); may be given again")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    if args.root is None:
        parser.error("no checkout with notebooks/ found next to this package; pass --root")
    try:
        copies = work_copies(args.root, refresh=args.refresh)
    except ValueError as error:
        parser.error(f"--refresh: {error}")
    except FileNotFoundError as error:
        parser.error(f"--root: {error}")
    print(describe(copies), flush=True)
    try:
        widgets_extension()
        cmd = lab_command(copies.folder, notebook=args.notebook, port=args.port, open_browser=not args.no_browser)
    except FileNotFoundError as error:
        parser.error(str(error))
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
