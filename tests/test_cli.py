"""The `cot-lab` command as an instructor uses it."""
import os
import subprocess
import sys

import pytest

import cot_lab as cl
from cot_lab.cli import main


def _cli(*args, home):
    env = {**os.environ, "COT_LAB_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "cot_lab.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_doctor_reports_device_peak_and_store(tmp_path):
    result = _cli("doctor", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "device      cpu" in result.stdout or "device      cuda" in result.stdout
    assert "GFLOP/s" in result.stdout
    assert str(tmp_path / "runs" / "runs.sqlite") in result.stdout
    # the measured peak was cached for the next time
    assert (tmp_path / "peak_flops.json").exists()


def test_train_command_trains_and_stores_then_hits_the_cache(tmp_path):
    args = ("train", "--params", "3e4", "--flops", "2e10", "--seq-len", "32", "--batch-size", "8")
    first = _cli(*args, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "status=ok" in first.stdout and "final validation loss" in first.stdout
    second = _cli(*args, home=tmp_path)
    assert "(from store)" in second.stdout
    store = cl.RunStore(tmp_path / "runs")
    (run,) = store.runs()
    assert run.budget == {"kind": "flops", "value": 2e10}
    assert run.flops <= 2e10
    assert f"{run.final_val_loss:.4f}" in first.stdout


@pytest.mark.parametrize("args, words", [
    (("train", "--params", "-5", "--flops", "1e12"), ["n_params=-5"]),
    (("train", "--params", "1e5", "--flops", "1e3"), ["too small for one step"]),
    (("train", "--params", "1e5", "--flops", "1e12", "--corpus", "wikipedia"), ["corpus", "synthetic"]),
])
def test_bad_arguments_give_a_clear_error_and_exit_code_2(args, words, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path))
    assert main(list(args)) == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_sweep_fit_and_precompute_commands(tmp_path):
    """An instructor's path: sweep (resumable), fit the store, precompute a result set the notebooks load."""
    sweep_args = ("--profile", "smoke", "--budgets", "3e9", "1e10", "--sizes", "3", "--tokens-per-param", "10",
                  "--store", str(tmp_path / "store"))
    first = _cli("sweep", *sweep_args, home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "sweep  profile=smoke: 6 runs, 2 budgets" in first.stdout
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
    assert holdout["run"].budget["value"] == 4e10  # the smoke profile's holdout_factor x the largest budget
    assert holdout["relative_error"] == pytest.approx(holdout["run"].final_val_loss / holdout["prediction"]["predicted_loss"] - 1)

    # the held-out run is trained with the sweep's seed (a second --seed on this tiny smoke sweep is too noisy to fit)
    assert {r.hparams["seed"] for r in shipped["runs"]} == {holdout["run"].hparams["seed"]} == {0}

    fitted = _cli("fit", "--store", str(tmp_path / "store"), "--bootstrap", "10", home=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    assert "Approach 3 (n=" in fitted.stdout and "H22 Approach 2" in fitted.stdout


def test_fit_of_shipped_results_prints_exponents(tmp_path):
    result = _cli("fit", "--precomputed", "laptop", "--bootstrap", "20", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "true entropy of the corpus" in result.stdout
    assert "this sweep: Approach 3" in result.stdout
