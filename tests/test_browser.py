"""A student's view: a real `jupyter lab` (the `make lab` command line) driven by headless Chromium.

Runs 00_start_here.ipynb from the menu, checks the widgets render (the prebuilt jupyterlab_widgets
extension), moves the model-size slider and sees the read-out change, presses Train and sees a
loss plot appear. The server runs on a temporary copy of notebooks/, so the repository's notebooks
are never saved with outputs.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from cot_lab import lab

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "cot-lab-browser-test"
PANEL = ".jp-OutputArea .cot-lab-panel"


@pytest.fixture(scope="module")
def chromium():
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`, as .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`jupyter lab` as `make lab` starts it, on a copy of notebooks/, with the smoke profile and private dirs."""
    base = tmp_path_factory.mktemp("lab")
    root = base / "course"
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    env = dict(os.environ, COT_LAB_PROFILE="smoke", COT_LAB_HOME=str(base / "home"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
               PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("MPLBACKEND", None)
    news = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text('{"fetchNews": "false"}')  # no "get notified about news?" toast over the page
    lab.widgets_extension()  # fails with the fix if the prebuilt extension is missing
    port = free_port()
    cmd = lab.lab_command(root, port=port, token=TOKEN, open_browser=False)
    log = open(base / "server.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if get(f"{url}/api/status?token={TOKEN}") == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not start:\n{(base / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield dict(url=url, root=root, log=base / "server.log")
    finally:
        try:  # shuts down the kernels too (they run in their own sessions)
            urllib.request.urlopen(urllib.request.Request(f"{url}/api/shutdown?token={TOKEN}", method="POST"),
                                   timeout=10)
            proc.wait(timeout=20)
        except Exception:
            pass
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_start_here_in_jupyterlab(chromium, server, tmp_path):
    from playwright.sync_api import sync_playwright

    repo_notebook = (ROOT / "notebooks" / "00_start_here.ipynb").read_bytes()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-extensions", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            # the default URL of `make lab` opens the first notebook
            page.goto(f"{server['url']}/?token={TOKEN}", timeout=60_000)
            page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=60_000)
            n_code = sum(c.cell_type == "code" for c in nbformat.reads(repo_notebook.decode(), as_version=4).cells)
            page.wait_for_function(
                f"() => document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt').length === {n_code}",
                timeout=60_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)

            # Run > Run All Cells, as a student would
            page.click('.lm-MenuBar-itemLabel:text-is("Run")')
            page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
            page.wait_for_function(
                """() => { const p = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
                           .map(e => e.textContent);
                           return p.length > 0 && p.every(t => /\\[\\d+\\]/.test(t)); }""", timeout=240_000)
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)

            stderr = page.eval_on_selector_all('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                                               "els => els.map(e => e.textContent)")
            assert not [t for t in stderr if "Traceback" in t or "Error" in t], stderr

            # the panel is a real widget view, not its text repr
            page.wait_for_selector(f"{PANEL} .widget-hslider.cot-lab-size", timeout=30_000)
            assert page.locator(f"{PANEL} .lm-Widget.widget-slider").count() >= 2
            assert "TrainPanel(" not in page.inner_text(".jp-Notebook")
            # the notebook's own run (cell `panel.train()`) drew its curve into the panel
            page.wait_for_selector(f"{PANEL} .cot-lab-output img", timeout=30_000)

            # move the size slider with the keyboard: the parameter read-out changes, the old plot goes
            params = page.locator(f"{PANEL} .cot-lab-params")
            before = params.inner_text()
            handle = page.locator(f"{PANEL} .cot-lab-size .noUi-handle")
            handle.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "([sel, old]) => document.querySelector(sel).textContent !== old",
                arg=[f"{PANEL} .cot-lab-params", before], timeout=30_000)
            after = params.inner_text()
            assert "parameters" in after and after != before
            page.wait_for_function(f"() => !document.querySelector('{PANEL} .cot-lab-output img')", timeout=30_000)
            assert "Not trained yet" in page.inner_text(f"{PANEL} .cot-lab-status")

            # Train: a real run with a live loss curve
            page.click(f"{PANEL} .cot-lab-train")
            page.wait_for_selector(f"{PANEL} .cot-lab-output img", timeout=180_000)
            page.wait_for_function(
                f"() => /done: validation loss/.test(document.querySelector('{PANEL} .cot-lab-status').textContent)",
                timeout=180_000)
            status = page.inner_text(f"{PANEL} .cot-lab-status")
            assert "❌" not in status and "above the entropy floor" in status
            assert not errors, errors
            page.locator(PANEL).screenshot(path=str(tmp_path / "panel.png"))  # kept by pytest, for a human to look at
        except Exception:
            shot = tmp_path / "jupyterlab.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}\nserver log: {server['log']}")
            raise
        finally:
            browser.close()
    assert (ROOT / "notebooks" / "00_start_here.ipynb").read_bytes() == repo_notebook
