"""A student's view: a real `jupyter lab` (the `make lab` command line) driven by headless Chromium.

Each notebook is run from the menu (Run > Run All Cells) with no tracebacks, and its panel is used
as a student would: 00's size slider and Train button, 01's budget sliders and GPU picker, 02's
size-at-budget panel and sweep button, 03's sparsity slider and method picker, 04's requests slider,
05's learning-rate slider. The checks are on what the page shows (the prebuilt jupyterlab_widgets
extension renders real widget views). The server runs on a temporary copy of notebooks/, so the
repository's notebooks are never saved with outputs.
"""
import contextlib
import os
import re
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
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
TOKEN = "cot-lab-browser-test"
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"  # the notebook in front
PANEL = f"{NOTEBOOK} .jp-OutputArea .cot-lab-panel"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-extensions", "--no-first-run"]


def find_chromium() -> tuple[Path | None, str]:
    """The browser to drive: $COT_LAB_CHROMIUM when set, else the first of CHROMIUM_NAMES on PATH.

    Returns (path, "") or (None, why it is missing and how to install it).
    """
    how = "on Debian/Ubuntu `apt-get install chromium` (as .ci/run does), or set COT_LAB_CHROMIUM=/path/to/chromium"
    chosen = os.environ.get("COT_LAB_CHROMIUM")
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path, ""
        return None, f"COT_LAB_CHROMIUM={chosen} is not an executable file: {how}"
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found), ""
    return None, f"no Chromium: none of {', '.join(CHROMIUM_NAMES)} is on PATH: {how}"


@pytest.fixture(scope="module")
def chromium():
    path, message = find_chromium()
    if path is None:
        if os.environ.get("CI") == "true":  # CI installs it (.ci/run): missing there is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message)
    return path


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


@contextlib.contextmanager
def lab_page(chromium, server, tmp_path):
    """A fresh headless Chromium page; on failure a full-page screenshot is kept beside the test's tmp_path."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        try:
            yield page
        except Exception:
            shot = tmp_path / "jupyterlab.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}\nserver log: {server['log']}")
            raise
        finally:
            browser.close()


def run_all(page, server, name: str | None, timeout_s: float = 240) -> None:
    """Open notebook `name` (None: `make lab`'s default page), Run All Cells from the menu, wait for every cell.

    Fails if any cell printed a traceback or an error to stderr.
    """
    if name is None:
        url, path = f"{server['url']}/?token={TOKEN}", lab.START_NOTEBOOK
    else:
        url, path = f"{server['url']}/lab/tree/notebooks/{name}?reset&token={TOKEN}", f"notebooks/{name}"
    page.goto(url, timeout=60_000)
    page.wait_for_selector(f"{NOTEBOOK} .jp-Cell", timeout=60_000)
    source = (ROOT / path).read_text()
    n_code = sum(c.cell_type == "code" for c in nbformat.reads(source, as_version=4).cells)
    page.wait_for_function(
        f"() => document.querySelectorAll('{NOTEBOOK} .jp-CodeCell .jp-InputPrompt').length === {n_code}",
        timeout=60_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
    page.wait_for_function(
        f"""() => {{ const p = [...document.querySelectorAll('{NOTEBOOK} .jp-CodeCell .jp-InputPrompt')]
                   .map(e => e.textContent);
                   return p.length > 0 && p.every(t => /\\[\\d+\\]/.test(t)); }}""", timeout=timeout_s * 1000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=60_000)
    stderr = page.eval_on_selector_all(f'{NOTEBOOK} .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                                       "els => els.map(e => e.textContent)")
    assert not [t for t in stderr if "Traceback" in t or "Error" in t], stderr


def shown_text(page, selector: str) -> str:
    """The text of the first match, scrolled into view first: JupyterLab 4 does not render cells out of view."""
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    return element.text_content()


def act_and_wait_for_change(page, action, watched: str, timeout_s: float = 30) -> tuple[str, str]:
    """Call `action()`, then wait until the text of `watched` changes; returns (before, after)."""
    before = shown_text(page, watched)
    action()
    page.wait_for_function("([sel, old]) => document.querySelector(sel).textContent !== old",
                           arg=[watched, before], timeout=timeout_s * 1000)
    return before, shown_text(page, watched)


def press_and_wait_for_change(page, key_target: str, key: str, watched: str, timeout_s: float = 30) -> tuple[str, str]:
    """Focus `key_target`, press `key`, wait until the text of `watched` changes; returns (before, after)."""
    def press():
        page.locator(key_target).first.focus()
        page.keyboard.press(key)
    return act_and_wait_for_change(page, press, watched, timeout_s)


def test_start_here_in_jupyterlab(chromium, server, tmp_path):
    repo_notebook = (ROOT / "notebooks" / "00_start_here.ipynb").read_bytes()
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, None)  # the default URL of `make lab` opens the first notebook

        # the panel is a real widget view, not its text repr
        page.wait_for_selector(f"{PANEL} .widget-hslider.cot-lab-size", timeout=30_000)
        assert page.locator(f"{PANEL} .lm-Widget.widget-slider").count() >= 2
        assert "TrainPanel(" not in page.inner_text(NOTEBOOK)
        # the notebook's own run (cell `panel.train()`) drew its curve into the panel
        page.wait_for_selector(f"{PANEL} .cot-lab-output img", timeout=30_000)

        # move the size slider with the keyboard: the parameter read-out changes, the old plot goes
        before, after = press_and_wait_for_change(page, f"{PANEL} .cot-lab-size .noUi-handle", "ArrowRight",
                                                  f"{PANEL} .cot-lab-params")
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

        # the largest budget, stopped twice: by the panel's Stop button, then by the notebook's Stop (■)
        page.locator(f"{PANEL} .cot-lab-budget .noUi-handle").first.focus()
        page.keyboard.press("End")
        page.wait_for_function(f"() => /Not trained yet/.test(document.querySelector('{PANEL} .cot-lab-status').textContent)",
                               timeout=30_000)
        for stop in (lambda: page.click(f"{PANEL} .cot-lab-stop"),
                     lambda: page.click('.jp-NotebookPanel:not(.lm-mod-hidden) [data-command="notebook:interrupt-kernel"]')):
            page.click(f"{PANEL} .cot-lab-train")
            page.wait_for_function(f"() => /^step \\d/.test(document.querySelector('{PANEL} .cot-lab-eta').textContent)",
                                   timeout=120_000)  # training, past its first step
            assert "left" in shown_text(page, f"{PANEL} .cot-lab-eta")  # an ETA from the start
            stop()
            page.wait_for_function(
                f"() => /run interrupted after \\d+ steps/.test(document.querySelector('{PANEL} .cot-lab-status').textContent)",
                timeout=30_000)
            assert "stopped after" in shown_text(page, f"{PANEL} .cot-lab-eta")
            assert page.locator(f"{PANEL} .cot-lab-bar").count() == 1  # one bar, however often Train is pressed
        assert not page.errors, page.errors
        page.locator(PANEL).screenshot(path=str(tmp_path / "panel.png"))  # kept by pytest, for a human to look at
    assert (ROOT / "notebooks" / "00_start_here.ipynb").read_bytes() == repo_notebook


def test_compute_budgets_panel(chromium, server, tmp_path):
    budget = f"{NOTEBOOK} .cot-lab-budget-panel"
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, "01_compute_budgets.ipynb")
        readout = shown_text(page, f"{budget} .cot-lab-budget")
        assert "FLOPs" in readout and "kWh" in readout and "$" in readout
        # more GPU-hours: more FLOPs, more dollars
        before, after = press_and_wait_for_change(page, f"{budget} .cot-lab-hours .noUi-handle", "ArrowRight",
                                                  f"{budget} .cot-lab-budget")
        assert float(after.split(" FLOPs")[0]) > float(before.split(" FLOPs")[0])
        # another GPU: another price line, and the Chinchilla/Epoch table is still there
        act_and_wait_for_change(page, lambda: page.select_option(f"{budget} .cot-lab-gpu select", "A100-80GB"),
                                f"{budget} .cot-lab-price-note")
        assert "A100-80GB" in shown_text(page, f"{budget} .cot-lab-budget")
        assert "N_opt" in shown_text(page, f"{budget} .cot-lab-laws")
        assert not page.errors, page.errors


def test_scaling_laws_panels(chromium, server, tmp_path):
    size_panel, sweep_panel = f"{NOTEBOOK} .cot-lab-size-panel", f"{NOTEBOOK} .cot-lab-sweep-panel"
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, "02_scaling_laws.ipynb", timeout_s=480)
        # Run All trains nothing: the panel shows the law's prediction and its curve, not yet a measurement
        page.wait_for_selector(f"{size_panel} .cot-lab-output img", timeout=30_000)
        shown = shown_text(page, f"{size_panel} .cot-lab-prediction")
        assert "The law predicts" in shown and "measured" not in shown
        # one size up: a new prediction, not yet measured; Train measures it
        before, after = press_and_wait_for_change(page, f"{size_panel} .cot-lab-size .noUi-handle", "ArrowRight",
                                                  f"{size_panel} .cot-lab-prediction")
        assert "The law predicts" in after and "measured" not in after
        page.click(f"{size_panel} .cot-lab-train")
        page.wait_for_function(
            f"() => /measured [0-9.]+ nats\\/token: prediction error [-+][0-9.]+%/"
            f".test(document.querySelector('{size_panel} .cot-lab-prediction').textContent)", timeout=180_000)
        # the sweep button trains this profile's sweep (Run All did not); pressed again, every run is in the store
        status = f"document.querySelector('{sweep_panel} .cot-lab-sweep-status').textContent"
        page.click(f"{sweep_panel} .cot-lab-sweep-run")
        page.wait_for_function(f"() => /done: (\\d+)\\/\\1 runs \\(\\1 trained now\\)/.test({status})",
                               timeout=240_000)
        page.click(f"{sweep_panel} .cot-lab-sweep-run")
        page.wait_for_function(f"() => /done: (\\d+)\\/\\1 runs \\(0 trained now\\)/.test({status})",
                               timeout=120_000)
        assert not page.errors, page.errors


def test_pruning_panel(chromium, server, tmp_path):
    panel = f"{NOTEBOOK} .cot-lab-prune-panel"
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, "03_pruning_and_quantization.ipynb", timeout_s=360)
        table = f"{panel} .cot-lab-table"
        assert "achieved sparsity 0.500" in shown_text(page, table)  # the notebook's panel.set(0.5, "wanda (per row)")
        # a higher sparsity from the keyboard (step 0.05): pruned and measured again
        _, after = press_and_wait_for_change(page, f"{panel} .cot-lab-sparsity .noUi-handle", "ArrowRight", table,
                                             timeout_s=60)
        achieved = float(re.search(r"achieved sparsity ([0-9.]+)", after).group(1))
        assert abs(achieved - 0.55) < 0.02 and "❌" not in after  # whole weights per row: 0.55 rounds a little
        # another method: whole attention heads, a smaller model
        _, after = act_and_wait_for_change(page, lambda: page.select_option(f"{panel} .cot-lab-method select",
                                                                            label="heads"), table, timeout_s=60)
        assert "validation loss" in after and "❌" not in after
        assert not page.errors, page.errors


def _count(shown: str) -> float:
    """'5.04B' -> 5.04e9: a count as the panels print it (`cot_lab.ui.format.human`)."""
    number, unit = re.fullmatch(r"\s*([0-9.]+)([KMB]?)\s*", shown).groups()
    return float(number) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[unit]


def test_lifetime_panel(chromium, server, tmp_path):
    panel = f"{NOTEBOOK} .cot-lab-lifetime-panel"
    n_chinchilla = f'{panel} .cot-lab-n-params[data-law="Chinchilla"]'
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, "04_training_vs_inference_cost.ipynb", timeout_s=360)
        page.wait_for_selector(n_chinchilla, timeout=30_000)
        # more expected requests: a smaller inference-aware model, for both laws
        your_before = shown_text(page, f'{panel} .cot-lab-n-params[data-law="your law"]')
        before, after = press_and_wait_for_change(page, f"{panel} .cot-lab-requests .noUi-handle", "ArrowRight",
                                                  n_chinchilla)
        assert _count(after) < _count(before)
        assert _count(shown_text(page, f'{panel} .cot-lab-n-params[data-law="your law"]')) < _count(your_before)
        assert not page.errors, page.errors


def test_learning_rate_panel(chromium, server, tmp_path):
    panel = f"{NOTEBOOK} .cot-lab-lr-panel"
    readout = f"{panel} .cot-lab-lr-readout"
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, "05_batch_size_and_learning_rate.ipynb", timeout_s=360)
        page.wait_for_selector(readout, timeout=30_000)
        # a higher rate from the keyboard: the loss read off the sweep changes, and so does its price
        before, after = press_and_wait_for_change(page, f"{panel} .cot-lab-lr .noUi-handle", "ArrowRight", readout)
        loss = [float(re.search(r"reads ([0-9.]+) nats/token", t).group(1)) for t in (before, after)]
        assert loss[0] != loss[1]
        assert not page.errors, page.errors


def test_router_panel(chromium, server, tmp_path):
    panel = f"{NOTEBOOK} .cot-lab-router-panel"
    readout, figure = f"{panel} .cot-lab-router-readout", f"{panel} .cot-lab-output img"
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, "06_dense_vs_moe.ipynb", timeout_s=360)
        page.wait_for_selector(figure, timeout=30_000)
        image = page.locator(figure).first.get_attribute("src")
        # more experts from the keyboard: another shipped run, its load histogram redrawn with more bars
        before, after = press_and_wait_for_change(page, f"{panel} .cot-lab-experts .noUi-handle", "ArrowRight", readout)
        experts = [int(re.search(r"(\d+) experts, top-", t).group(1)) for t in (before, after)]
        assert experts[1] > experts[0]
        page.wait_for_function("([sel, old]) => document.querySelector(sel).getAttribute('src') !== old",
                               arg=[figure, image], timeout=30_000)
        assert not page.errors, page.errors


def test_contamination_panel(chromium, server, tmp_path):
    panel = f"{NOTEBOOK} .cot-lab-contamination-panel"
    verdict, figure = f"{panel} .cot-lab-verdict", f"{panel} .cot-lab-output img"
    with lab_page(chromium, server, tmp_path) as page:
        run_all(page, server, "07_evaluation_and_data_quality.ipynb", timeout_s=360)
        page.wait_for_selector(figure, timeout=30_000)
        image = page.locator(figure).first.get_attribute("src")
        assert "clean:" in shown_text(page, verdict)  # the slider starts at 0 copies
        # one copy more from the keyboard: the detector now flags the planted rows, and the figure is redrawn
        before, after = press_and_wait_for_change(page, f"{panel} .cot-lab-copies .noUi-handle", "ArrowRight", verdict)
        assert "clean:" in before and "contaminated:" in after, (before, after)
        assert re.search(r"32 of the 288 validation rows", after), after
        page.wait_for_function("([sel, old]) => document.querySelector(sel).getAttribute('src') !== old",
                               arg=[figure, image], timeout=30_000)
        assert not page.errors, page.errors
