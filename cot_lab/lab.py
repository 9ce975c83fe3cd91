"""The JupyterLab server command line, in one place: `make lab` runs it, and the browser test starts the same.

    python -m cot_lab.lab                 # opens notebooks/00_start_here.ipynb of this checkout
    python -m cot_lab.lab --root DIR --port 8888 --no-browser

The widgets render through the prebuilt `jupyterlab_widgets` extension (installed with
ipywidgets 8); no build step and no network are needed, so it is checked before starting.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

WIDGETS_EXTENSION = "@jupyter-widgets/jupyterlab-manager"
START_NOTEBOOK = "notebooks/00_start_here.ipynb"


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
    """Entry point of `python -m cot_lab.lab`: check the widgets extension, then exec JupyterLab in this process."""
    parser = argparse.ArgumentParser(prog="python -m cot_lab.lab", description="start JupyterLab on the course")
    parser.add_argument("--root", type=Path, default=_default_root(), help="folder holding notebooks/")
    parser.add_argument("--notebook", default=START_NOTEBOOK, help="notebook to open, relative to --root")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    if args.root is None:
        parser.error("no checkout with notebooks/ found next to this package; pass --root")
    try:
        widgets_extension()
        cmd = lab_command(args.root, notebook=args.notebook, port=args.port, open_browser=not args.no_browser)
    except FileNotFoundError as error:
        parser.error(str(error))
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
