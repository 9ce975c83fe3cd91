"""Every notebook runs in a real Jupyter kernel (the venv's ipykernel) in the smoke profile, without errors.

Also: notebooks are stored without outputs, and 00_start_here produces real results (a trained
model whose validation loss sits between the entropy floor and uniform guessing; doubling the
budget lowers it).
"""
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
START = NOTEBOOK_DIR / "00_start_here.ipynb"
PROBE = "import sys; print('__kernel__', sys.prefix)"


@pytest.fixture(scope="module")
def smoke_env(tmp_path_factory):
    """The kernel inherits this process's environment: smoke profile, a private COT_LAB_HOME, the venv first on PATH."""
    home = tmp_path_factory.mktemp("nb_home")
    saved = {k: os.environ.get(k) for k in ("COT_LAB_PROFILE", "COT_LAB_HOME", "PATH", "MPLBACKEND")}
    os.environ["COT_LAB_PROFILE"] = "smoke"
    os.environ["COT_LAB_HOME"] = str(home)
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    os.environ.pop("MPLBACKEND", None)  # let the kernel pick the inline backend, as in Jupyter
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def execute(path: Path, *, replace: dict[str, str] | None = None, append: str | None = None):
    """Run a notebook top to bottom in a fresh python3 kernel with notebooks/ as working directory."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for old, new in (replace or {}).items():
            if cell.cell_type == "code" and old in cell.source:
                cell.source = cell.source.replace(old, new)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    if append:
        nb.cells.append(nbformat.v4.new_code_cell(append))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()
    return nb


def outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from ((cell, out) for out in cell.get("outputs", []))


def stream_text(nb) -> str:
    return "".join(out.get("text", "") for _, out in outputs(nb) if out.output_type == "stream")


def assert_clean(nb) -> None:
    """No error outputs and no Python tracebacks printed to stderr, and the kernel was the venv's."""
    for cell, out in outputs(nb):
        assert out.output_type != "error", f"error output in cell:\n{cell.source}\n{out.get('evalue')}"
        if out.output_type == "stream" and out.name == "stderr":
            assert "Traceback" not in out.text, f"traceback on stderr in cell:\n{cell.source}\n{out.text}"
    assert f"__kernel__ {sys.prefix}" in stream_text(nb), "the notebook did not run in this venv's kernel"


def html_outputs(nb) -> list[str]:
    return [out.data["text/html"] for _, out in outputs(nb)
            if out.output_type in ("display_data", "execute_result") and "text/html" in out.get("data", {})]


def answered_text(path: Path, answers: dict[str, str], press: str | None, n_checks: int) -> str:
    """Run a notebook with its exercises answered (and `press` appended); every one of its `n_checks` checkers
    must say right and nothing may fail; returns what it printed, for the prose's numbers."""
    nb = execute(path, replace=answers, append=press)
    assert_clean(nb)
    verdicts = [h for h in html_outputs(nb) if "cot-lab-check" in h]
    assert len(verdicts) == n_checks and all("✅" in v for v in verdicts), verdicts
    text = stream_text(nb)
    assert "profile 'smoke'" in text
    return text


def test_there_are_notebooks():
    assert START in NOTEBOOKS


def committed_text(path: Path) -> str:
    """The version git would commit (the index), else the file on disk (untracked, or not a git checkout).

    A student's own copy may hold outputs after working through it; what goes into the repository may not.
    """
    rel = path.relative_to(ROOT).as_posix()
    try:
        staged = subprocess.run(["git", "show", f":{rel}"], cwd=ROOT, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        staged = None
    if staged is not None and staged.returncode == 0:
        return staged.stdout.decode()
    return path.read_text()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.reads(committed_text(path), as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs:\n{cell.source[:200]}"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count:\n{cell.source[:200]}"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state in the metadata"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def setup_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


def test_every_notebook_has_the_same_setup_cell_of_at_most_five_lines():
    cells = {path.name: setup_cell(path) for path in NOTEBOOKS}
    first = cells[START.name]
    assert len(first.splitlines()) <= 5, first
    assert all(cell == first for cell in cells.values()), "setup cells differ: " + ", ".join(cells)
    assert "COT_LAB_SOURCE" in first and "import cot_lab as cl" in first


def test_setup_cell_stops_with_what_to_set_when_the_kit_is_missing(tmp_path):
    """In a Python without cot_lab and without COT_LAB_SOURCE, the cell stops and names the variable to set."""
    source = setup_cell(START).replace("get_ipython()", "_ip")  # plain Python: no IPython shell
    env = {k: v for k, v in os.environ.items() if k not in ("COT_LAB_SOURCE", "PYTHONPATH")}
    # -I: isolated, so neither the checkout nor the editable install is importable
    out = subprocess.run([sys.executable, "-I", "-S", "-c", source], capture_output=True, text=True, cwd=tmp_path,
                         env=env, timeout=60)
    assert out.returncode != 0 and "ImportError" in out.stderr and "COT_LAB_SOURCE" in out.stderr, out.stderr
    assert "make lab" in out.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile(path, smoke_env):
    nb = execute(path)
    assert_clean(nb)
    if path == START:
        check_start_here(nb)
    if path.stem == "03_pruning_and_quantization":
        check_pruning(nb)


def check_pruning(nb) -> None:
    """Notebook 03 measured real things: a half-pruned model, zeros kept through recovery, a verdict at equal FLOPs."""
    text = stream_text(nb)
    assert "pruned weights still zero    True" in text
    before, after = map(float, re.search(r"before recovery\s+([0-9.]+).*?\n.*?FLOPs\s+([0-9.]+)", text).groups())
    assert after < before, f"recovery must lower the loss: {before} -> {after}"
    assert re.search(r"better at equal compute: (train big, prune, recover|train small)", text)
    assert len([out for _, out in outputs(nb) if "image/png" in out.get("data", {})]) >= 4
    assert any("Fill in my_file_bytes" in h for h in html_outputs(nb))


def check_start_here(nb) -> None:
    text = stream_text(nb)
    loss = float(re.search(r"final validation loss:\s+([0-9.]+) nats/token", text).group(1))
    floor = float(re.search(r"entropy floor:\s+([0-9.]+) nats/token", text).group(1))
    assert 2.0 < floor < 6.0, f"entropy floor {floor} is not a plausible synthetic-language floor"
    assert floor < loss < math.log(512), f"the first run's loss {loss} must lie between the floor {floor} and ln V"
    assert "profile 'smoke'" in text
    assert re.search(r"peak\s+[0-9,]+ GFLOP/s measured", text)
    pngs = [out for _, out in outputs(nb) if "image/png" in out.get("data", {})]
    assert len(pngs) >= 2, "the loss-curve and loss-by-skill cells must each show a figure"
    gap, left = map(float, re.search(r"the largest gap: .+?, ([0-9.]+) of the ([0-9.]+) nats/token", text).groups())
    assert 0 < gap <= left, "the skill split's largest gap is part of what is left to learn"
    assert "Synthetic language version 3" in text
    widget_views = [out for _, out in outputs(nb) if "application/vnd.jupyter.widget-view+json" in out.get("data", {})]
    assert widget_views, "the training panel was not displayed as a widget"
    assert any("Fill in my_prediction" in h for h in html_outputs(nb)), "the unanswered exercise must say so"


def test_start_here_exercise_answered(smoke_env):
    """With a prediction filled in, the exercise trains at twice the budget and the checker gives a verdict."""
    nb = execute(START, replace={"my_prediction = None": "my_prediction = 4.0"},
                 append="print('__result__', run.final_val_loss, run2.final_val_loss, floor)")
    assert_clean(nb)
    loss1, loss2, floor = map(float, re.search(r"__result__ (\S+) (\S+) (\S+)", stream_text(nb)).groups())
    assert floor < loss2 < loss1, f"twice the budget must lower the loss: {loss1} -> {loss2}, floor {floor}"
    verdicts = [h for h in html_outputs(nb) if "cot-lab-check" in h]
    assert len(verdicts) == 1 and ("✅" in verdicts[0] or "❌" in verdicts[0]), verdicts
    expected_pass = abs(4.0 - loss2) <= max(0.02, 0.3 * abs(loss1 - loss2))
    assert ("✅" in verdicts[0]) == expected_pass
    assert f"{loss2:.3f}" not in verdicts[0], "the checker must not reveal the measured loss"


BUDGETS = NOTEBOOK_DIR / "01_compute_budgets.ipynb"
BUDGET_ANSWERS = {  # each exercise of 01 answered correctly, by the arithmetic the notebook teaches
    "flops_100h = None": "flops_100h = 989.4e12 * 0.4 * 3600 * 100",
    "tokens_1b = None": "tokens_1b = flops_100h / cl.flops_per_token(cfg_1b)",
    "most_flops_at_8192 = None": "most_flops_at_8192 = 'chinchilla'",
    "ratio_at_8192 = None": ("ratio_at_8192 = 1 + 12 * cfg_small.n_layer * 8192 * cfg_small.d_model"
                             " / (6 * cl.count_params(cfg_small).total)"),
    "hours_7b = None": "hours_7b = 6 * N_7B * D_7B / (989.4e12 * 0.4 * 3600)",
}


def test_compute_budgets_exercises_answered(smoke_env):
    """01 with every exercise answered: all five checkers pass, and the printed numbers are the real ones."""
    nb = execute(BUDGETS, replace=BUDGET_ANSWERS, append="print('__result__', panel.readout['flops'], measured)")
    assert_clean(nb)
    verdicts = [h for h in html_outputs(nb) if "cot-lab-check" in h]
    assert len(verdicts) == 5 and all("✅" in v for v in verdicts), verdicts
    text = stream_text(nb)
    assert "profile 'smoke'" in text
    assert "one H100 hour: 1.42e+18 FLOPs = 1 h of H100-SXM at 40% MFU = $3.78 = 0.70 kWh" in text
    panel_flops, measured = map(float, re.search(r"__result__ (\S+) (\S+)", text).groups())
    assert panel_flops == pytest.approx(989.4e12 * 0.4 * 3600, rel=1e-12)
    # The FLOP counter check: Chinchilla's count without the softmax equals what PyTorch counted.
    assert re.search(r"chinchilla without the softmax [0-9,]+\s+= 1\.000000 x counted", text), text
    six_n = float(re.search(r"6n\s+[0-9,]+\s+= ([0-9.]+) x counted", text).group(1))
    assert six_n < 0.5, "at 1024 tokens of context 6N must miss most of a small model's work"
    assert [out for _, out in outputs(nb) if "image/png" in out.get("data", {})], "the accounting figure is missing"
    assert [out for _, out in outputs(nb)
            if "application/vnd.jupyter.widget-view+json" in out.get("data", {})], "the budget panel was not shown"


def test_compute_budgets_wrong_answers_are_flagged(smoke_env):
    """Wrong answers fail with a direction and never the expected value; an unanswered one asks to be filled in."""
    nb = execute(BUDGETS, replace={"flops_100h = None": "flops_100h = 1.0e20",
                                   "most_flops_at_8192 = None": "most_flops_at_8192 = 'kaplan'",
                                   "hours_7b = None": "hours_7b = 'a lot'"})
    assert_clean(nb)
    verdicts = [h for h in html_outputs(nb) if "cot-lab-check" in h]
    assert len(verdicts) == 5 and not any("✅" in v for v in verdicts), verdicts
    assert "too low" in verdicts[0] and "1.42e" not in verdicts[0]
    assert "Fill in your token count" in verdicts[1]
    assert "is not it" in verdicts[2] and "chinchilla" not in verdicts[2].split("Hint")[0]
    assert "not a number" in verdicts[4]
