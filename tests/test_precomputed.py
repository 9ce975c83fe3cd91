"""Shipped result sets: the file format round-trips and is checked, and the shipped laptop sweep meets its targets."""
import json
import math

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.core import results as pc
from cot_lab.scaling.sweep_fit import fit_sweep, sweep_points
from cot_lab.core.runs import Run


def make_run(i: int, steps: int = 500) -> Run:
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=1)
    return Run(run_id=f"run{i}", config=cfg, corpus="synthetic", corpus_fingerprint="fp", budget={"kind": "flops", "value": 1e10},
               hparams={"batch_size": 2}, tokens=1000, train_curve=[[s, s * 10, 5.0 - s / 1000] for s in range(1, steps + 1)],
               val_curve=[[steps, steps * 10, 4.5]], final_val_loss=4.5)


def test_thin_curve_keeps_ends_and_caps_points():
    curve = [[s, s, float(s)] for s in range(1, 1001)]
    thin = pc.thin_curve(curve, 200)
    assert len(thin) <= 200 and thin[0] == curve[0] and thin[-1] == curve[-1]
    assert pc.thin_curve(curve[:50], 200) == curve[:50]


def test_round_trip_and_checksums(tmp_path):
    runs = [make_run(i) for i in range(3)]
    folder = pc.save_results(tmp_path / "set", runs, {"prediction": {"predicted_loss": 4.4}, "runs": [make_run(9)],
                                                      "relative_error": 0.01},
                             profile="smoke", plan={"budgets": [1e10]}, sweep_wall_s=1.5, sweep_train_s=1.0)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"]["runs.json"] == pc.sha256_file(folder / "runs.json")
    assert [r["config_hash"] for r in manifest["runs"]] == [pc.config_hash(r) for r in runs]
    assert manifest["hardware"]["peak_flops"]["fp32"] > 0 and manifest["versions"]["torch"]
    loaded = pc.load_results("smoke", folder)
    assert [r.run_id for r in loaded["runs"]] == ["run0", "run1", "run2"]
    assert loaded["runs"][0].final_val_loss == 4.5 and len(loaded["runs"][0].train_curve) <= pc.MAX_CURVE_POINTS
    assert loaded["holdout"]["runs"][0].run_id == "run9" and loaded["holdout"]["relative_error"] == 0.01

    (folder / "runs.json").write_text((folder / "runs.json").read_text().replace("4.5", "4.4"))
    with pytest.raises(ValueError, match="sha256"):
        pc.load_results("smoke", folder)
    with pytest.raises(FileNotFoundError, match="cot-lab precompute"):
        pc.load_results("smoke", tmp_path / "nothing")


# ---------------------------------------------------------------- the shipped laptop result set

@pytest.fixture(scope="module")
def shipped():
    return pc.load_results("laptop")


@pytest.fixture(scope="module")
def shipped_fit(shipped):
    return fit_sweep(shipped["runs"], bootstrap=200, seed=0, entropy=shipped["manifest"]["paired_entropy"])


def test_shipped_sweep_is_like_for_like_and_centred(shipped):
    runs = shipped["runs"]
    profile = cl.profile("laptop")
    assert all(r.status == "ok" and r.corpus == profile.sweep_corpus for r in runs)
    assert {(r.config.d_model, r.config.n_layer) for r in runs} <= {(c.d_model, c.n_layer) for c in cl.size_ladder()}
    points = sweep_points(runs)
    assert (points.n_seeds >= 2).all()
    assert sorted(points.budget_flops.unique()) == sorted(profile.sweep_budgets)
    for c, group in points.groupby("budget_flops"):
        assert len(group) >= 6
        n, loss = group.N.to_numpy(float), group.loss.to_numpy()
        c2, c1, _ = np.polyfit(np.log(n), loss, 2)  # the budget's minimum: its parabola's vertex (Approach 2)
        vertex = math.exp(-c1 / (2 * c2))
        assert c2 > 0 and (n < vertex).sum() >= 2 and (n > vertex).sum() >= 2, f"budget {c:g}: vertex {vertex:.0f}, sizes {n}"
        assert 0 < int(np.argmin(loss)) < len(group) - 1  # and the best point is not at an edge
        assert (group.loss > shipped["manifest"]["paired_entropy"]).all()  # no model beats the floor


def test_shipped_manifest_names_real_runs_and_hardware(shipped):
    manifest = shipped["manifest"]
    assert manifest["profile"] == "laptop"
    assert manifest["hardware"]["device_name"] and manifest["hardware"]["peak_flops"]["fp32"] > 1e9
    assert {r["run_id"] for r in manifest["runs"]} == {r.run_id for r in shipped["runs"]}
    assert all(r["config_hash"] == pc.config_hash(run) for r, run in zip(manifest["runs"], shipped["runs"]))
    for run in shipped["runs"] + shipped["holdout"]["runs"]:
        assert run.flops == pytest.approx(run.tokens * cl.flops_per_token(run.config), rel=1e-9)
        assert run.val_curve[-1][2] == run.final_val_loss
    # the sweep's wall time: runs side by side, so under the sum of their own times and over the longest
    longest = max(r.wall_s for r in shipped["runs"])
    assert longest < manifest["sweep_wall_s"] < sum(r.wall_s for r in shipped["runs"])


def test_the_optimum_costs_c_under_the_trainers_count(shipped_fit):
    cost = cl.ladder_flops_per_token()
    for c in shipped_fit.budgets + [4 * max(shipped_fit.budgets)]:
        n, d = shipped_fit.optimal(c)
        assert cost(n) * d == pytest.approx(c, rel=0.01)
        assert 6 * n * d < 0.8 * c  # 6ND would call this optimum 20-40% cheaper than the trainer counts it


def test_shipped_fits_on_both_parameter_counts(shipped):
    non_embedding = fit_sweep(shipped["runs"], bootstrap=0, parameters="non_embedding")
    total = fit_sweep(shipped["runs"], bootstrap=0)
    assert non_embedding.parameters == "non_embedding" and total.parameters == "total"
    assert (non_embedding.points.N < total.points.N).all()
    assert 0 < non_embedding.approach3.a < 1 and 0 < total.approach3.a < 1


def test_shipped_exponents_lie_in_the_target_band(shipped_fit):
    a2 = shipped_fit.approach2
    assert a2 is not None and a2["used"].sum() >= 3
    assert 0.35 <= a2["a"] <= 0.65
    assert 0.35 <= shipped_fit.approach3.a <= 0.65


def test_shipped_interval_of_a_is_at_most_0_2_wide(shipped_fit):
    low, high = shipped_fit.approach3.intervals["a"]
    assert low < shipped_fit.approach3.a < high
    assert shipped_fit.approach3.n_bootstrap_failed == 0
    assert high - low <= 0.2


@pytest.mark.xfail(strict=True, reason="measured on the shipped sweep: Approach 2's a = 0.352 lies just below Approach 3's "
                   "interval (0.359, 0.537); Approach 3's a = 0.422 is inside Approach 2's (0.246, 0.486). Three budgets "
                   "over 4x of compute leave each vertex's position, and so Approach 2, loose (notebook 02, section 5)")
def test_approaches_2_and_3_agree_within_their_intervals(shipped_fit):
    a2, a3 = shipped_fit.approach2, shipped_fit.approach3
    assert a2 is not None and a2["used"].all()
    low3, high3 = a3.intervals["a"]
    low2, high2 = a2["a_interval"]
    assert low3 <= a2["a"] <= high3 and low2 <= a3.a <= high2


def test_e_interval_is_at_most_0_3_wide(shipped_fit):
    assert shipped_fit.e_versus_entropy()["width"] <= 0.3


@pytest.mark.xfail(strict=True, reason="measured on the shipped sweep: E = 3.145, interval (3.124, 3.160), the floor on the "
                   "scored rows is 2.98: the law's E sits 0.16 nats/token above it. Every run is >= 0.16 above the floor, "
                   "and the fitted form flattens before it gets there (notebook 02, section 6)")
def test_e_interval_holds_the_paired_entropy(shipped_fit):
    assert shipped_fit.e_versus_entropy()["inside"]


def test_leave_one_budget_out_is_reported(shipped_fit):
    loo = shipped_fit.leave_one_out
    assert len(loo) == len(shipped_fit.budgets) and loo.a_approach3.notna().all()


def test_shipped_holdout_is_within_3_percent(shipped, shipped_fit):
    holdout = shipped["holdout"]
    runs = holdout["runs"]
    largest = max(r.budget["value"] for r in shipped["runs"])
    assert all(r.budget["value"] == pytest.approx(4 * largest) and r.status == "ok" for r in runs)
    assert sorted(r.hparams["seed"] for r in runs) == sorted(cl.profile("laptop").sweep_seeds)  # as many seeds as a point
    # the shipped prediction is the law refitted from the shipped runs: it must agree
    law = shipped_fit.approach3
    predicted = law.loss(runs[0].n_params, runs[0].tokens)
    assert predicted == pytest.approx(holdout["prediction"]["predicted_loss"], rel=2e-3)
    loss = float(np.mean([r.final_val_loss for r in runs]))
    assert loss == pytest.approx(holdout["loss"], rel=1e-12)
    error = loss / predicted - 1
    assert error == pytest.approx(holdout["relative_error"], abs=2e-3)
    assert abs(error) <= 0.03
