"""The shipped language pilots (cot_lab/precomputed/pilot-*): the language targets, read from shipped results.

No test retrains: each reads the pilot `python -m cot_lab.scaling.pilot run` wrote (5 budgets from 1e10 to 1e12
FLOPs, a constant-aspect ladder of 2 to 6 layers, 3 seeds per point, one run at 10x the top budget).
"""
import math

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.data.synthetic import SyntheticCorpus
from cot_lab.scaling import pilot

V3 = "synthetic-v3"


@pytest.fixture(scope="module")
def shipped():
    return {name: pilot.load_pilot(name) for name in ("synthetic", V3)}


@pytest.fixture(scope="module")
def measured(shipped):
    return {name: pilot.pilot_checks(p) for name, p in shipped.items()}


def test_pilots_are_what_the_pilot_plan_says(shipped):
    plan = pilot.pilot_plan()
    for name, version in (("synthetic", 2), (V3, 3)):
        p = shipped[name]
        assert p["corpus_fingerprint"] == SyntheticCorpus(version=version).fingerprint
        assert len(p["runs"]) == len(plan) * len(pilot.SEEDS)
        assert sorted({r["budget"]["value"] for r in p["runs"]}) == [1e10, 3e10, 1e11, 3e11, 1e12]
        shapes = {(r["config"]["d_model"], r["config"]["n_layer"]) for r in p["runs"]}
        assert all(d == 8 * layers and layers >= 2 for d, layers in shapes)  # constant aspect, >= 2 layers
        assert all(r["status"] == "ok" for r in p["runs"])
        floor, _ = SyntheticCorpus(version=version).entropy_for(pilot.SEQ_LEN)
        assert p["floor"] == pytest.approx(floor, abs=1e-12)


def test_every_run_carries_its_loss_split_by_skill(shipped):
    for p in shipped.values():
        for run in p["runs"] + ([p["extension"]] if p["extension"] else []):
            skills = run["skills"]
            assert sum(s["floor"] for s in skills["skills"]) == pytest.approx(skills["floor"], abs=1e-9)
            assert sum(s["model"] for s in skills["skills"]) == pytest.approx(skills["model"], abs=1e-9)
            # the split's own 1024 validation rows against final_val_loss's 128: the same model, close losses
            assert skills["model"] == pytest.approx(run["final_val_loss"], abs=0.03)


def test_no_run_beats_the_floor(measured):
    for name, m in measured.items():
        assert m["below_floor"] == 0, name


def test_ten_times_the_top_budget_still_lowers_the_loss(shipped, measured):
    extension = shipped[V3]["extension"]
    assert extension["budget"]["value"] == 10 * max(pilot.WINDOWS)
    assert measured[V3]["extension_gain"] > 0.02, measured[V3]["extension_gain"]  # well beyond a seed's spread


def test_version_2_pilot_shows_the_problem(measured):
    """The diagnosis the redesign rests on: on version 2, seeds disagree by several percent."""
    assert measured["synthetic"]["seed_spread"] > 0.02


@pytest.mark.xfail(strict=True, reason=(
    "measured 7.5%: the largest spread is at 1e10 FLOPs (33K parameters: 4.38 to 4.73 nats/token), and the runs far "
    "from their budget's optimum spread 2-7% up to 3e11; each budget's best point spreads 3.8% (1e10), then 0.4%, "
    "0.6%, 0.2%, 0.1%. In runs of 60-800 steps one seed leaves the first plateau later than another: that is "
    "the optimizer at tiny batches, which the language cannot remove"))
def test_version_3_seed_spread_within_one_percent(measured):
    assert measured[V3]["seed_spread"] <= pilot.TARGETS["seed_spread"], measured[V3]["spreads"]


def test_version_3_seeds_agree_where_the_optimum_is(measured):
    """Each budget's best point from 3e10 up: the seeds agree within the target (version 2: up to 1.1%)."""
    spreads = measured[V3]["spreads"]
    best = spreads.loc[spreads.groupby("budget").loss.idxmin()]
    assert (best[best.budget >= 3e10].spread <= pilot.TARGETS["seed_spread"]).all(), best


def test_version_3_more_compute_lowers_the_best_loss(measured):
    best = measured[V3]["best"]
    assert all(later < earlier for earlier, later in zip(best, best[1:])), best


@pytest.mark.xfail(strict=True, reason=(
    "measured slopes d(best loss)/d ln C of -0.427, -0.092, -0.0611, -0.0612 nats: the top two agree within 0.3%, "
    "so the best loss is a straight line in log C from 1e11 to 1e12 instead of bending (version 2 steepens there, "
    "-0.048 then -0.142). The skill split shows what is left: the clause stack (nesting) and agreement, circuits, "
    "still drop in a jump between 1e11 and 1e12"))
def test_version_3_best_loss_is_convex_in_log_compute(measured):
    assert measured[V3]["convex"], measured[V3]["slopes"]


@pytest.mark.xfail(strict=True, reason=(
    "measured +2.20% (the law fitted to 1e10-1e11 predicts 3e11 a little too low; version 2: +3.28%). Its 1e10 and "
    "3e10 points spread several percent between seeds, and the fit leans on them; four budgets to the fifth: +1.26%"))
def test_version_3_law_on_three_budgets_predicts_the_fourth(measured):
    assert abs(measured[V3]["holdout_error"]) <= pilot.TARGETS["holdout_error"], measured[V3]["holdout_error"]


def test_version_3_law_on_four_budgets_predicts_the_fifth(measured):
    assert abs(measured[V3]["next_holdout_error"]) <= pilot.TARGETS["holdout_error"], measured[V3]["next_holdout_error"]


def test_pilot_checks_recover_known_numbers():
    """pilot_checks on a made-up pilot whose losses follow an exact law E + A/N^a + B/D^b: no spread,
    convex, and the held-out budgets predicted to within the fit's tolerance."""
    E, A, alpha, B, beta = 2.9, 60.0, 0.4, 200.0, 0.35
    runs = []
    for budget, (lo, hi) in pilot.WINDOWS.items():
        for i in range(lo, hi):
            for seed in pilot.SEEDS:
                cfg = pilot.ladder_config(i)
                n = cl.count_params(cfg).total
                d = budget / cl.flops_per_token(cfg)
                runs.append(dict(budget={"value": budget}, config=cfg.to_dict(), tokens=d, hparams={"seed": seed},
                                 final_val_loss=E + A / n ** alpha + B / d ** beta))
    fake = dict(runs=runs, floor=E - 0.01, extension=dict(final_val_loss=E + 0.01))
    m = pilot.pilot_checks(fake)
    assert m["seed_spread"] == 0 and m["convex"] and m["below_floor"] == 0
    assert abs(m["holdout_error"]) < 1e-3 and abs(m["next_holdout_error"]) < 1e-3
    assert m["extension_gain"] == pytest.approx(min(m["best"]) - E - 0.01)
    assert not math.isnan(np.mean(m["slopes"]))


def test_the_laptop_sweep_is_centred_where_the_version_3_pilot_puts_the_optimum(shipped):
    import cot_lab as cl

    n_at_1e12, a = pilot.pilot_centre(shipped["synthetic-v3"])
    centre = cl.profile("laptop").sweep_centre
    assert centre[0] == pytest.approx(n_at_1e12, rel=1e-4) and centre[1] == pytest.approx(a, abs=1e-3)
