"""`make lab` works on copies in work/: notebooks/ stays as committed, a student's copy is never overwritten."""
import shutil
import subprocess
from pathlib import Path

import pytest

from cot_lab import lab

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def course(tmp_path):
    """A checkout with two committed notebooks."""
    (tmp_path / "notebooks").mkdir()
    for name in ("00_start_here", "01_compute_budgets"):
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text(f'{{"committed": "{name}"}}\n')
    return tmp_path


def test_first_start_copies_every_notebook_into_work(course):
    copies = lab.work_copies(course)
    assert copies.folder == course / "work"
    assert copies.copied == ["00_start_here.ipynb", "01_compute_budgets.ipynb"]
    assert copies.kept == [] and copies.refreshed == []
    for name in copies.copied:
        assert (course / "work" / name).read_text() == (course / "notebooks" / name).read_text()
    assert sorted(p.name for p in (course / "work").iterdir()) == copies.copied  # no temporary file left


def test_a_students_copy_is_kept_and_a_new_notebook_is_added(course):
    lab.work_copies(course)
    answered = '{"my_prediction": 4.2}\n'
    (course / "work" / "00_start_here.ipynb").write_text(answered)
    (course / "notebooks" / "02_scaling_laws.ipynb").write_text('{"committed": "02"}\n')  # a later lesson arrives
    copies = lab.work_copies(course)
    assert copies.kept == ["00_start_here.ipynb", "01_compute_budgets.ipynb"]
    assert copies.copied == ["02_scaling_laws.ipynb"]
    assert (course / "work" / "00_start_here.ipynb").read_text() == answered
    assert (course / "notebooks" / "00_start_here.ipynb").read_text() == '{"committed": "00_start_here"}\n'


@pytest.mark.parametrize("name", ["00_start_here", "00_start_here.ipynb"])
def test_refresh_replaces_one_copy_and_keeps_the_old_one_aside(course, name):
    lab.work_copies(course)
    (course / "work" / "00_start_here.ipynb").write_text('{"my_prediction": 4.2}\n')
    (course / "work" / "01_compute_budgets.ipynb").write_text('{"mine": 1}\n')
    copies = lab.work_copies(course, refresh=[name])
    assert copies.refreshed == ["00_start_here.ipynb"] and copies.kept == ["01_compute_budgets.ipynb"]
    assert (course / "work" / "00_start_here.ipynb").read_text() == '{"committed": "00_start_here"}\n'
    assert (course / "work" / "00_start_here.before-refresh.ipynb").read_text() == '{"my_prediction": 4.2}\n'
    assert (course / "work" / "01_compute_budgets.ipynb").read_text() == '{"mine": 1}\n'


def test_refresh_of_an_unknown_notebook_lists_the_real_ones(course):
    with pytest.raises(ValueError, match=r"refresh='02_scaling' is not a notebook .*; choose from "
                                         r"00_start_here, 01_compute_budgets$"):
        lab.work_copies(course, refresh=["02_scaling"])
    assert not (course / "work").exists()  # refused before anything was made


def test_a_root_without_notebooks_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no notebooks/"):
        lab.work_copies(tmp_path)


def test_describe_says_what_was_copied_and_kept_and_how_to_refresh(course):
    lab.work_copies(course)
    (course / "notebooks" / "02_scaling_laws.ipynb").write_text("{}\n")
    text = lab.describe(lab.work_copies(course))
    assert f"your notebooks are in {course / 'work'} (notebooks/ stays as committed)" in text
    assert "copied now:     02_scaling_laws.ipynb" in text
    assert "yours, kept:    00_start_here.ipynb, 01_compute_budgets.ipynb" in text
    assert "--refresh 00_start_here" in text


def test_main_rejects_a_bad_refresh_naming_the_flag(course, capsys):
    with pytest.raises(SystemExit) as exit:
        lab.main(["--root", str(course), "--refresh", "nope"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "error: --refresh: refresh='nope' is not a notebook" in err and "00_start_here, 01_compute_budgets" in err


def test_make_lab_opens_jupyterlab_on_the_copies(course):
    # the command make lab runs ends in lab_command on the copies' folder, opening the first notebook there
    copies = lab.work_copies(course)
    cmd = lab.lab_command(copies.folder, notebook=Path(lab.START_NOTEBOOK).name, open_browser=False)
    assert f"--ServerApp.root_dir={course / 'work'}" in cmd
    assert "--LabApp.default_url=/lab/tree/00_start_here.ipynb" in cmd
    assert "$(BIN)/python -m cot_lab.lab --root $(CURDIR)" in (ROOT / "Makefile").read_text()


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs git and a checkout")
def test_work_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", "work/00_start_here.ipynb"], check=False, cwd=ROOT,
                             timeout=30)
    assert ignored.returncode == 0, "work/ must be in .gitignore: it holds the students' answers"
