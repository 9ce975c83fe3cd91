"""Notebook 05's shipped runs: what was planned was trained, checksummed, and says what the notebook says."""
import json
import math
import shutil

import pandas as pd
import pytest

import cot_lab as cl
from cot_lab.core import results
from cot_lab.core.recipe import BETA2
from cot_lab.hparams import pilot as hp
from cot_lab.hparams.critical import critical_batch
from cot_lab.hparams.panel import best_run_per_batch
from cot_lab.hparams.wasted import compute_multiplier
from cot_lab.scaling.recipe_pilot import SWEEP_BATCH, best_lr, load_recipe_pilot


@pytest.fixture(scope="module")
def shipped():
    return hp.load_hparams_pilot()


def test_every_planned_batch_run_is_shipped_and_finished(shipped):
    runs = shipped["batch_runs"]
    planned = {(p.batch_size, round(p.lr, 12)) for p in hp.batch_plan()}
    assert planned <= {(r.hparams["batch_size"], round(r.hparams["lr"], 12)) for r in runs}  # and edge extensions
    assert all(r.status == "ok" and r.corpus == hp.CORPUS and r.n_params == 66_848 for r in runs)
    assert all(r.flops == pytest.approx(hp.BUDGET, rel=0.01) and r.flops <= hp.BUDGET for r in runs)
    assert all(len(r.val_curve) >= 10 for r in runs)  # steps to a target are read off these


def test_every_batchs_best_rate_is_inside_the_rates_it_was_tried_at(shipped):
    for b in hp.BATCHES:
        tried = sorted((r.hparams["lr"], r.final_val_loss) for r in shipped["batch_runs"] if r.hparams["batch_size"] == b)
        best = min(range(len(tried)), key=lambda i: tried[i][1])
        assert 0 < best < len(tried) - 1, f"batch {b}: best rate {tried[best][0]:.3g} at an edge of {tried}"


def test_a_changed_file_is_refused(tmp_path):
    copy = tmp_path / "set"
    shutil.copytree(hp.pilot_dir(), copy)
    data = json.loads((copy / "noise.json").read_text())
    data["history"][0]["b_simple"] = 1.0
    (copy / "noise.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="sha256"):
        hp.load_hparams_pilot(copy)


def test_the_shipped_lr_sweeps_have_an_interior_minimum_at_every_width():
    rows = pd.DataFrame([r for r in load_recipe_pilot()["runs"] if r["batch_size"] == SWEEP_BATCH
                         and r["beta2"] == BETA2])
    for d, g in rows.groupby("d_model"):
        assert best_lr(g["lr"], g["final_val_loss"])[2], f"d_model {d}: the best rate is at an edge of the grid"


def test_the_multiplier_is_1_at_the_optimum_and_above_1_away_from_it():
    law = cl.ScalingLaw(**results.load_results("laptop")["holdout"]["fitted_law"])
    rows = pd.DataFrame([r for r in load_recipe_pilot()["runs"] if r["batch_size"] == SWEEP_BATCH
                         and r["beta2"] == BETA2 and r["d_model"] == 32])
    best = rows["final_val_loss"].min()
    tokens = 1e12 / cl.flops_per_token(hp.pilot_config())
    multipliers = [compute_multiplier(law, tokens=tokens, loss=loss, best_loss=best) for loss in rows["final_val_loss"]]
    assert min(multipliers) == pytest.approx(1.0, abs=1e-12)
    assert sorted(multipliers)[1] > 1.0


def test_the_critical_batch_fit_has_the_trade_offs_shape(shipped):
    best = best_run_per_batch(shipped["batch_runs"])
    assert [r.hparams["batch_size"] for r in best] == list(hp.BATCHES)
    crit = critical_batch(best, max(r.final_val_loss for r in best))
    assert all(math.isfinite(s) for s in crit.steps)  # the loss every batch reaches: reached by every batch
    assert crit.s_min > 0 and crit.e_min > 0 and 0 < crit.mccandlish < math.inf


def test_b_simple_was_measured_along_the_run_and_grows_as_the_loss_falls(shipped):
    history, run = shipped["noise"], shipped["noise_run"]
    assert run.status == "ok" and len(history) == run.steps // hp.NOISE_EVERY
    assert [h["step"] for h in history] == [hp.NOISE_EVERY * (i + 1) for i in range(len(history))]
    ends = [h["b_simple_tokens"] for h in history[:3]], [h["b_simple_tokens"] for h in history[-3:]]
    assert all(b > 0 for part in ends for b in part)
    assert sum(ends[1]) > sum(ends[0])  # McCandlish et al. Sec. 3: the noise scale grows as training proceeds
