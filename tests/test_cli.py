"""The `cot-lab` command as an instructor uses it."""
import os
import re
import subprocess
import sys

import pytest

import cot_lab as cl
from cot_lab.cli import in_flag_terms, main


def _cli(*args, home):
    env = {**os.environ, "COT_LAB_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cot_lab.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_doctor_reports_device_peak_and_store(tmp_path):
    result = _cli("doctor", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "device      cpu" in result.stdout or "device      cuda" in result.stdout
    assert "GFLOP/s" in result.stdout
    # doctor only looks: a fresh home has no store yet, and doctor does not make one
    assert f"run store   {tmp_path / 'runs'}  (none yet" in result.stdout
    assert not (tmp_path / "runs").exists()
    # the measured peak was cached for the next time
    assert (tmp_path / "peak_flops.json").exists()


def test_train_command_trains_and_stores_then_hits_the_cache(tmp_path):
    args = ("train", "--params", "3e4", "--flops", "2e10", "--seq-len", "32", "--batch-size", "8")
    first = _cli(*args, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "status=ok" in first.stdout and "final validation loss" in first.stdout
    assert f"store  {tmp_path / 'runs' / 'runs.sqlite'}: new, created by this command" in first.stdout
    second = _cli(*args, home=tmp_path)
    assert "(from store)" in second.stdout and "created" not in second.stdout
    store = cl.RunStore(tmp_path / "runs")
    (run,) = store.runs()
    assert run.budget == {"kind": "flops", "value": 2e10}
    assert run.flops <= 2e10
    assert f"{run.final_val_loss:.4f}" in first.stdout


def _error_line(capsys) -> str:
    """The one line a failed command wrote: stderr must hold nothing else (no usage block, no traceback)."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (("train", "--params", "-5", "--flops", "1e12"), ["cot-lab train: error: --params -5", "positive"]),
    (("train", "--params", "1e5", "--flops", "1e3"),
     ["cot-lab train: error: --flops 1e+03 is too small for one step", "--batch-size 16 x --seq-len 128"]),
    (("train", "--params", "1e5", "--flops", "1e12", "--corpus", "wikipedia"),
     ["cot-lab train: error: --corpus 'wikipedia' is not a corpus", "'synthetic', 'synthetic-v3' (many small skills), 'python-docs', 'python-code'"]),
    (("train", "--params", "1e5", "--flops", "1e12", "--device", "tpu"),
     ["cot-lab train: error: --device 'tpu'", "'cpu', 'cuda'"]),
    (("train", "--params", "1e5"), ["cot-lab train: error: one of the arguments --flops --tokens --seconds is required"]),
    (("sweep", "--profile", "huge"),
     ["cot-lab sweep: error: argument --profile: invalid choice: 'huge'", "'smoke', 'laptop', 'gpu', 'auto'"]),
    (("sweep", "--profile", "smoke", "--sizes", "2"), ["cot-lab sweep: error: --sizes 2", ">= 3"]),
    (("fit", "--precomputed", "nosuch"), ["cot-lab fit: error:", "--precomputed 'nosuch'", "'laptop'"]),
])
def test_bad_arguments_give_one_line_naming_the_flag_and_exit_code_2(args, words, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path))
    assert main(list(args)) == 2
    line = _error_line(capsys)
    for word in words:
        assert word in line, line
    assert "None" not in line and "name=" not in line and "n_params=" not in line


def test_too_large_a_model_is_an_error_not_a_quiet_cap(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path))
    assert main(["train", "--params", "1e12", "--flops", "1e20", "--no-store"]) == 2
    line = _error_line(capsys)
    assert line.startswith("cot-lab train: error: --params 1e+12 is more than the largest model the kit builds")
    largest = int(re.search(r"\(([0-9,]+) parameters", line).group(1).replace(",", ""))
    # the preset's widest, deepest shape: d_model 2048 x 32 layers, about 12 x 32 x 2048^2 = 1.6e9 weights
    assert largest == pytest.approx(12 * 32 * 2048 ** 2, rel=0.05)
    assert "give --params 1.6e+09 or less" in line
    assert main(["train", "--params", "10", "--flops", "1e20", "--no-store"]) == 2
    assert "is less than the smallest model the kit builds" in _error_line(capsys)


def test_offline_hub_corpus_is_one_line_naming_the_flag_and_the_offline_choices(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the loader then refuses at once, before any network call
    assert main(["train", "--corpus", "hf:nosuch/dataset", "--flops", "1e12", "--no-store"]) == 2
    line = _error_line(capsys)
    assert line.startswith("cot-lab train: error: --corpus hf:nosuch/dataset: Could not reach the Hugging Face hub")
    assert "HF_HUB_OFFLINE=1 is set" in line
    assert "use --corpus synthetic, python-docs, python-code or a path" in line and "load_corpus(" not in line


def test_fit_of_a_mistyped_store_is_an_error_and_creates_nothing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path / "home"))
    typo = tmp_path / "stroe"
    assert main(["fit", "--store", str(typo)]) == 2
    line = _error_line(capsys)
    assert line == (f"cot-lab fit: error: --store {typo} holds no run store; give a folder that `cot-lab train` or "
                    f"`cot-lab sweep --store` wrote (only they create one)")
    assert not typo.exists()
    assert main(["fit"]) == 2  # the default store, never written: the same error, with the folder it looked in
    assert f"no --store given, and the default folder {tmp_path / 'home' / 'runs'} holds no run store" in _error_line(capsys)
    assert not (tmp_path / "home" / "runs").exists()


def test_fit_of_a_store_with_too_few_runs_says_which_store_and_what_it_holds(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path))
    cl.RunStore(tmp_path / "store")
    assert main(["fit", "--store", str(tmp_path / "store"), "--corpus", "python-docs"]) == 2
    line = _error_line(capsys)
    assert f"--store {tmp_path / 'store'} (0 of its 0 runs on --corpus python-docs)" in line
    assert "need at least 5 finished runs of one sweep" in line


def test_in_flag_terms_names_only_whole_argument_names():
    flags = {"flops": "--flops", "batch_size": "--batch-size", "budgets[]": "--budgets"}
    assert (in_flag_terms("flops=1e3 too small for batch_size=16; max_flops=2 budgets[]=-1", flags)
            == "--flops 1e3 too small for --batch-size 16; max_flops=2 --budgets -1")


def test_sweep_fit_and_precompute_commands(tmp_path):
    """An instructor's path: sweep (resumable), fit the store, precompute a result set the notebooks load."""
    sweep_args = ("--profile", "smoke", "--budgets", "3e9", "1e10", "--sizes", "3", "--tokens-per-param", "10",
                  "--store", str(tmp_path / "store"))
    first = _cli("sweep", *sweep_args, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"store  {tmp_path / 'store' / 'runs.sqlite'}: new, created by this command" in first.stdout
    assert "sweep  profile=smoke corpus=synthetic-v3: 6 points x 1 seed(s), 2 budgets" in first.stdout
    store = cl.RunStore(tmp_path / "store")
    assert len(store) == 6 and all(r.status == "ok" for r in store.runs())
    again = _cli("sweep", *sweep_args, home=tmp_path)
    assert "(0 s of training)" in again.stdout  # every run came back from the store

    out = tmp_path / "set"
    pre = _cli("precompute", *sweep_args, "--out", str(out), "--bootstrap", "10", home=tmp_path)
    assert pre.returncode == 0, pre.stderr
    assert "prediction error" in pre.stdout and f"wrote {out}" in pre.stdout
    from cot_lab.core.results import load_results

    shipped = load_results("smoke", out)
    assert sorted(r.run_id for r in shipped["runs"]) == sorted(r.run_id for r in store.runs() if r.budget["value"] <= 1e10)
    holdout = shipped["holdout"]
    (held,) = holdout["runs"]  # one run per sweep seed: the smoke profile has one
    assert held.budget["value"] == 4e10  # the smoke profile's holdout_factor x the largest budget
    assert holdout["loss"] == held.final_val_loss
    assert holdout["relative_error"] == pytest.approx(held.final_val_loss / holdout["prediction"]["predicted_loss"] - 1)
    assert {r.hparams["seed"] for r in shipped["runs"]} == {held.hparams["seed"]} == {0}
    assert shipped["manifest"]["paired_entropy"] > 0 and shipped["manifest"]["sweep_wall_s"] > 0

    # the store now holds the held-out run too: fit leaves it out, and says so
    fitted = _cli("fit", "--store", str(tmp_path / "store"), "--bootstrap", "10", home=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    assert "fitting 6 runs of one sweep" in fitted.stdout
    assert "left out 1 run(s): 1 x alone at 4e+10 FLOPs with fewer than 3 sizes" in fitted.stdout
    assert "Approach 3 (n=6 points from 6 runs" in fitted.stdout and "H22 Approach 2" in fitted.stdout


def test_fit_of_shipped_results_prints_exponents(tmp_path):
    result = _cli("fit", "--precomputed", "laptop", "--bootstrap", "20", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "floor of the corpus on the scored rows" in result.stdout
    assert "this sweep: Approach 3" in result.stdout


def test_a_local_folder_needs_a_licence_from_the_command_line_too(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path / "home"))
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("the cat sat on the mat and looked at the dog. " * 200)
    args = ["train", "--corpus", str(folder), "--params", "2e4", "--seq-len", "32", "--tokens", "2048",
            "--batch-size", "4", "--no-store"]
    assert main(args) == 2
    line = _error_line(capsys)
    assert "has no licence information" in line and line.endswith("from the command line: --licence CC-BY-4.0")
    assert main(args + ["--licence", "CC0-1.0"]) == 0
    capsys.readouterr()
    assert main(["train", "--corpus", "synthetic", "--licence", "MIT", "--flops", "1e10", "--no-store"]) == 2
    assert "--licence 'MIT' declares the terms of a local text file or folder" in _error_line(capsys)


def test_serve_refuses_a_folder_with_no_registry_and_creates_nothing(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path / "home"))
    assert main(["serve", "--registry", str(tmp_path / "nothing")]) == 2
    assert "no model registry there" in _error_line(capsys)
    assert not (tmp_path / "nothing").exists()
