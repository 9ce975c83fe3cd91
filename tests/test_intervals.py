"""Honest intervals: the bootstraps keep every resample in view, carry each point's noise, and cover the truth.

The coverage test simulates the shipped sweep's own design (its budgets, sizes and tokens) from a known law
with the seed noise measured on the shipped runs, and checks that the nominal 90% interval of a contains
the true a in at least 80% of 50 simulated sweeps (the scaling-law issue's target).
"""
import numpy as np
import pytest

import cot_lab as cl
from cot_lab.core.law import ScalingLaw
from cot_lab.core.runs import Run
from cot_lab.scaling.fit import EXPONENT_BOUNDS, fit_scaling_law
from cot_lab.scaling.isoflop import fit_isoflop_parabolas
from cot_lab.scaling.sweep import isoflop_plan
from cot_lab.scaling.sweep_fit import select_sweep, sweep_points

TRUE = ScalingLaw(E=3.0, A=40.0, B=300.0, alpha=0.4, beta=0.4)  # a = 0.5


def design(law=TRUE):
    """The laptop profile's sweep design: (N, D, C) of every point."""
    plan = isoflop_plan(cl.profile("laptop").sweep_budgets, cl.profile("laptop").sweep_sizes,
                        n_opt=cl.profile("laptop").sweep_centre).to_frame()
    return plan.n_params.to_numpy(float), plan.tokens.to_numpy(float), plan.budget_flops.to_numpy(float)


def simulated(law, seed_sd, seed, n_seeds=2):
    N, D, C = design(law)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, seed_sd, (n_seeds, len(N))).mean(0)  # a point is the mean of its seeds
    return N, D, C, law.loss(N, D) + noise


def test_approach2_bootstrap_reports_every_resample():
    N, D, C, L = simulated(TRUE, 0.01, seed=1)
    fit = fit_isoflop_parabolas(N, C, L, flops_per_token=cl.ladder_flops_per_token(), bootstrap=100, seed=0)
    assert fit["n_bootstrap"] == 100 and 0 <= fit["n_bootstrap_failed"] <= 100
    low, high = fit["a_interval"]
    assert low < fit["a"] < high
    # D_opt is what C buys N_opt under the trainer's count
    cost = cl.ladder_flops_per_token()
    np.testing.assert_allclose(cost(fit["N_opt"]) * fit["D_opt"], fit["C"], rtol=1e-9)


def test_approach2_counts_a_failed_resample_instead_of_dropping_it():
    # the top budget's minimum sits just inside its largest size: resamples that push it out are counted
    N, D, C, L = simulated(TRUE, 0.01, seed=1)
    top = C == C.max()
    x = np.log(N[top])
    vertex = x.min() + 0.93 * (x.max() - x.min())
    L = L.copy()
    L[top] = 3.3 + 0.02 * (x - vertex) ** 2 + np.random.default_rng(3).normal(0, 0.004, top.sum())
    fit = fit_isoflop_parabolas(N, C, L, bootstrap=100, seed=0)
    assert fit["used"][-1] and fit["interior"][-1]
    assert 0 < fit["n_bootstrap_failed"] < 100


def test_approach3_resamples_are_bounded_and_counted():
    N, D, C, L = simulated(TRUE, 0.01, seed=2)
    law = fit_scaling_law(N, D, L, bootstrap=40, seed=0)
    assert law.n_bootstrap == 40 and law.n_bootstrap_failed == 0
    for name in ("alpha", "beta"):
        low, high = law.intervals[name]
        assert EXPONENT_BOUNDS[0] <= low <= high <= EXPONENT_BOUNDS[1]
    low, high = law.intervals["a"]
    assert low < law.a < high


def test_a_law_that_rises_with_n_is_refused():
    N, D, C, L = simulated(TRUE, 0.0, seed=0)
    with pytest.raises(ValueError, match="does not fall"):
        fit_scaling_law(N, D, 3.0 + 1e-3 * N ** 0.3)


def _run(i, cfg, budget, *, lr=None, batch=None, seed=0, beta2=0.99, loss=3.5):
    return Run(run_id=f"r{i}", config=cfg, corpus="synthetic-v3", corpus_fingerprint="fp",
               budget={"kind": "flops", "value": budget}, tokens=int(budget / cl.flops_per_token(cfg)),
               hparams={"lr": cl.default_lr(cfg) if lr is None else lr, "seed": seed, "beta2": beta2,
                        "batch_size": cl.batch_size_for(budget, cfg.seq_len) if batch is None else batch},
               final_val_loss=loss)


def test_select_sweep_keeps_one_homogeneous_sweep_and_says_what_it_left_out():
    ladder = cl.size_ladder()
    sweep = [_run(10 * b + i, ladder[i], c, seed=s) for b, c in enumerate((1e12, 2e12)) for i in range(3) for s in (0, 1)]
    held_out = _run(90, ladder[3], 8e12)
    pilot = _run(91, ladder[1], 1e12, lr=0.04)
    other_batch = _run(92, ladder[1], 1e12, batch=16)
    other_recipe = _run(93, ladder[2], 1e12, beta2=0.95)
    kept, left = select_sweep(sweep + [held_out, pilot, other_batch, other_recipe])
    assert {r.run_id for r in kept} == {r.run_id for r in sweep}
    why = {r.run_id: reason for r, reason in left}
    assert "alone at" in why["r90"] and "learning rate" in why["r91"] and "batch" in why["r92"]
    assert "recipe" in why["r93"]
    points = sweep_points(kept)
    assert len(points) == 6 and (points.n_seeds == 2).all()


def test_shipped_design_intervals_cover_the_true_exponent():
    """50 simulated sweeps of the shipped design from the shipped law, with the shipped seed noise."""
    from cot_lab.core.results import load_results
    from cot_lab.scaling.sweep_fit import fit_sweep

    shipped = fit_sweep(load_results("laptop")["runs"], bootstrap=0)
    truth, seed_sd = shipped.approach3, shipped.seed_sd
    assert 0 < seed_sd < 0.1
    covered, widths = 0, []
    for sweep in range(50):
        N, D, C, L = simulated(truth, seed_sd, seed=100 + sweep)
        law = fit_scaling_law(N, D, L, bootstrap=100, seed=sweep, n_starts=10, resample_starts=2)
        low, high = law.intervals["a"]
        covered += low <= truth.a <= high
        widths.append(high - low)
    assert covered >= 40, f"the 90% interval held the true a in {covered} of 50 simulated sweeps"
