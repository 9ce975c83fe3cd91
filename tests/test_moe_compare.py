"""Dense against MoE (cot_lab.moe.compare) on constructed runs and points whose answers are known in closed form."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cot_lab.core.accounting import active_params, count_params, flops_per_token
from cot_lab.core.shapes import size_ladder
from cot_lab.moe import compare
from cot_lab.moe.shapes import moe_shape
from cot_lab.scaling.fit import ScalingLaw

BUDGETS = (1e15, 1e16, 1e17)
LADDER = size_ladder()
CURV, DELTA = 0.3, 0.002  # parabola curvature in log N; seeds at v - DELTA, v, v + DELTA (mean v, sd DELTA)
LAW = ScalingLaw(E=1.7, A=400.0, B=410.0, alpha=0.34, beta=0.28)


def fake_run(cfg, budget, loss, status="ok"):
    return SimpleNamespace(status=status, final_val_loss=loss, budget={"value": budget}, config=cfg,
                           tokens=budget / flops_per_token(cfg))


def sweep(moe_offset=-0.05):
    """Budget i: dense rungs LADDER[i:i+6], MoE partners (8 experts, top-2) of the middle four. In-window losses lie on
    CURV (log N_active - x0)^2 + L0 (plus moe_offset for MoE, each in its own N_active); the two outer dense rungs sit
    1 nat above it, so a parabola that used them would move. Returns moe runs, dense runs, {budget: (x0, L0, window)}."""
    moe_runs, dense_runs, truth = [], [], {}
    for i, budget in enumerate(BUDGETS):
        window = LADDER[i + 1:i + 5]
        x0, l0 = float(np.mean([math.log(active_params(c)) for c in window])), 4.0 - 0.3 * i
        truth[budget] = (x0, l0, window)
        for cfg in LADDER[i:i + 6]:
            v = CURV * (math.log(active_params(cfg)) - x0) ** 2 + l0 + (0.0 if cfg in window else 1.0)
            dense_runs += [fake_run(cfg, budget, v + DELTA * s) for s in (-1, 0, 1)]
        for cfg in window:
            moe = moe_shape(cfg, n_experts=8, top_k=2)
            v = CURV * (math.log(active_params(moe)) - x0) ** 2 + l0 + moe_offset
            moe_runs += [fake_run(moe, budget, v + DELTA * s) for s in (-1, 0, 1)]
    return moe_runs, dense_runs, truth


@pytest.fixture(scope="module")
def moe_wins():
    moe_runs, dense_runs, truth = sweep(-0.05)
    points = compare.comparison_points(moe_runs, dense_runs)
    return points, compare.matched_flops(points, bootstrap=1000), truth


def test_vertex_of_a_known_parabola_and_nans_when_it_opens_downwards():
    x = np.log([1e4, 3e4, 1e5, 3e5, 1e6])
    assert compare.vertex(x, 0.2 * (x - 11.3) ** 2 + 3.1) == pytest.approx((11.3, 3.1), abs=1e-9)
    assert compare.vertex(x, 0.7 * (x - 9.0) ** 2 + 2.5) == pytest.approx((9.0, 2.5), abs=1e-9)
    assert all(math.isnan(v) for v in compare.vertex(x, -0.2 * (x - 11.3) ** 2 + 3.1))


def test_pooled_seed_sd_weights_each_point_by_its_degrees_of_freedom():
    points = pd.DataFrame(dict(arch=["dense", "dense", "dense", "moe"], n_seeds=[3, 2, 1, 4],
                               seed_sd=[0.01, 0.02, np.nan, 0.5]))
    # (0.01^2 * 2 + 0.02^2 * 1) / (2 + 1) = 0.0002; the single seed and the other arch do not count
    assert compare.pooled_seed_sd(points, "dense") == pytest.approx(math.sqrt(0.0002), rel=1e-12)
    assert compare.pooled_seed_sd(points, "moe") == pytest.approx(0.5, rel=1e-12)
    assert math.isnan(compare.pooled_seed_sd(points[points.n_seeds == 1], "dense"))


def test_seed_noise_and_the_verdict_call_a_difference_within_seed_noise_a_tie():
    points = pd.DataFrame(dict(arch=["dense", "dense", "moe", "moe"], n_seeds=[2, 2, 2, 2],
                               seed_sd=[0.003, 0.004, 0.006, 0.008]))
    # pooled: dense sqrt((9 + 16) / 2) e-3, moe sqrt((36 + 64) / 2) e-3; each point a mean of 2 seeds; z(90%) 1.6449
    expected = 1.644854 * math.sqrt(12.5e-6 / 2 + 50e-6 / 2)
    noise = compare.seed_noise(points)
    assert noise == pytest.approx(expected, rel=1e-5)
    assert compare.verdict(3.20, 3.20 + 1.01 * noise, noise) == "moe"
    assert compare.verdict(3.20 + 1.01 * noise, 3.20, noise) == "dense"
    assert compare.verdict(3.20 + 0.99 * noise, 3.20, noise) == "tie"
    assert compare.seed_noise(points.assign(n_seeds=1, seed_sd=np.nan)) == 0.0  # one seed: no spread measured


def test_comparison_points_seed_means_accounting_and_window():
    moe_runs, dense_runs, truth = sweep(-0.05)
    small, moe_small = LADDER[1], moe_shape(LADDER[1], n_experts=8, top_k=2)
    dropped = [fake_run(small, 1e15, 0.0, status="failed"), fake_run(small, 1e15, float("nan")),
               fake_run(moe_small, 1e15, float("inf")), fake_run(moe_small, 1e15, 0.0, status="diverged")]
    lone = fake_run(LADDER[0], 1e18, 5.0)  # one seed, at a budget with no MoE runs
    points = compare.comparison_points(moe_runs + dropped[2:], dense_runs + dropped[:2] + [lone])
    assert len(points) == 3 * (6 + 4) + 1
    for row in points.itertuples():
        if row.budget_flops == 1e18:
            assert (row.arch, row.n_seeds, row.loss, row.in_window) == ("dense", 1, 5.0, False)
            assert math.isnan(row.seed_sd)
            continue
        x0, l0, window = truth[row.budget_flops]
        dense_cfg = next(c for c in LADDER if c.d_model == row.d_model)
        cfg = moe_shape(dense_cfg, n_experts=8, top_k=2) if row.arch == "moe" else dense_cfg
        outside = row.arch == "dense" and dense_cfg not in window
        expected = CURV * (math.log(active_params(cfg)) - x0) ** 2 + l0 + (1.0 if outside else 0.0)
        assert row.loss == pytest.approx(expected - (0.05 if row.arch == "moe" else 0.0), abs=1e-12)
        assert row.n_seeds == 3 and row.seed_sd == pytest.approx(DELTA, rel=1e-9)  # ddof=1: sqrt(2 DELTA^2 / 2)
        assert (row.N_active, row.N_total) == (active_params(cfg), count_params(cfg).total)
        assert (row.N_total > row.N_active) == (row.arch == "moe")
        assert row.tokens == pytest.approx(row.budget_flops / flops_per_token(cfg), rel=1e-12)
        assert row.flops_per_token == flops_per_token(cfg)
        assert row.in_window == (dense_cfg in window)  # MoE always; dense only where an MoE partner ran that budget
    # per budget: d_model 24 has an MoE partner at 1e15 but is an outer dense rung at 1e16
    assert points[(points.arch == "dense") & (points.d_model == 24)].set_index("budget_flops").in_window.to_dict() \
        == {1e15: True, 1e16: False}


def test_matched_flops_finds_the_moe_lower_by_exactly_its_offset(moe_wins):
    points, table, truth = moe_wins
    assert list(table.budget_flops) == list(BUDGETS)
    for row in table.itertuples():
        x0, l0, window = truth[row.budget_flops]
        assert row.dense_L_opt == pytest.approx(l0, abs=1e-9) and row.moe_L_opt == pytest.approx(l0 - 0.05, abs=1e-9)
        assert row.dense_N_opt == pytest.approx(math.exp(x0), rel=1e-8)
        assert row.moe_N_opt == pytest.approx(math.exp(x0), rel=1e-8)
        assert row.dense_interior and row.moe_interior
        assert row.difference == pytest.approx(-0.05, abs=1e-9)
        assert row.difference_lo < -0.05 < row.difference_hi < 0
        # the interval's width: the vertex loss is, to first order, the least-squares fitted value at x0, whose variance
        # under per-point noise DELTA / sqrt(3 seeds) is (DELTA^2 / 3) v^T (X^T X)^-1 v, v = (x0^2, x0, 1)
        var = 0.0
        for arch in ("dense", "moe"):
            p = points[(points.arch == arch) & (points.budget_flops == row.budget_flops) & points.in_window]
            x = np.vander(np.log(p.N_active.to_numpy(float)), 3)
            v = np.array([x0 * x0, x0, 1.0])
            var += DELTA ** 2 / 3 * v @ np.linalg.solve(x.T @ x, v)
        half = 1.6449 * math.sqrt(var)  # a 90% interval is +-1.645 sd
        assert (row.difference_hi - row.difference_lo) / 2 == pytest.approx(half, rel=0.15)
        assert (row.difference_hi + row.difference_lo) / 2 == pytest.approx(-0.05, abs=0.2 * half)
        assert row.winner == "moe"
        nearest = min(window, key=lambda c: abs(math.log(active_params(c)) - x0))
        assert row.dense_best_d_model == nearest.d_model == row.moe_best_d_model


def test_matched_flops_dense_wins_when_swapped_and_identical_curves_tie():
    dense_wins = compare.matched_flops(compare.comparison_points(*sweep(+0.05)[:2]), bootstrap=1000)
    assert np.allclose(dense_wins.difference, 0.05, atol=1e-9)
    assert (dense_wins.difference_lo > 0).all() and (dense_wins.winner == "dense").all()
    tie = compare.matched_flops(compare.comparison_points(*sweep(0.0)[:2]), bootstrap=1000)
    assert np.allclose(tie.difference, 0.0, atol=1e-9)
    assert ((tie.difference_lo < 0) & (tie.difference_hi > 0)).all() and (tie.winner == "tie").all()


def test_dense_size_for_inverts_the_law_and_is_inf_below_its_floor():
    for n, d in ((1e5, 2e6), (3e6, 1e8), (1e9, 2e10)):
        assert compare.dense_size_for(LAW, LAW.loss(n, d), d) == pytest.approx(n, rel=1e-9)
    floor = LAW.E + LAW.B / 1e8 ** LAW.beta
    assert compare.dense_size_for(LAW, floor - 1e-3, 1e8) == math.inf
    assert compare.dense_size_for(LAW, LAW.E - 0.1, 1e8) == math.inf


def test_effective_parameters_multiplier_is_n_effective_over_n_active():
    n, d = np.array([1e5, 3e5, 1e6]), np.array([2e6, 5e6, 2e7])
    losses = [LAW.loss(3 * n[0], d[0]), LAW.loss(5 * n[1], d[1]), LAW.E + LAW.B / d[2] ** LAW.beta - 1e-3]
    points = pd.DataFrame(dict(arch=["moe"] * 3 + ["dense"], budget_flops=[1e16] * 4, d_model=[16, 24, 32, 16],
                               N_active=[*n, 1e5], N_total=[*(4 * n), 1e5], tokens=[*d, 2e6], loss=[*losses, 3.0]))
    out = compare.effective_parameters(points, LAW)
    assert len(out) == 3
    assert list(out.N_effective[:2]) == pytest.approx([3 * n[0], 5 * n[1]], rel=1e-9)
    assert list(out.multiplier[:2]) == pytest.approx([3.0, 5.0], rel=1e-9)
    assert out.N_effective.iloc[2] == math.inf and out.multiplier.iloc[2] == math.inf


def test_compute_multiplier_against_the_closed_form_compute_optimal_loss():
    six_n = lambda n: 6.0 * n  # noqa: E731 -- C = 6ND, where H22 eq. 4 gives the compute-optimal loss in closed form
    c = 1e17
    assert compare.compute_multiplier(LAW, LAW.optimal_loss(c), c, six_n) == pytest.approx(1.0, rel=1e-4)
    assert compare.compute_multiplier(LAW, LAW.optimal_loss(4 * c), c, six_n) == pytest.approx(4.0, rel=1e-4)
    assert compare.compute_multiplier(LAW, LAW.optimal_loss(c / 10), c, six_n) == pytest.approx(0.1, rel=1e-4)
    assert compare.compute_multiplier(LAW, LAW.E - 0.01, c, six_n) == math.inf


def _memory_points(dense_vertex, moe_rows, budget):
    n = [100_000, 200_000, 400_000, 800_000, 1_600_000]
    q = lambda x: CURV * (math.log(x) - math.log(dense_vertex)) ** 2 + 3.5  # noqa: E731
    one_seed = dict(n_seeds=1, seed_sd=np.nan)  # no seed spread: the verdict is the plain comparison
    rows = [dict(arch="dense", budget_flops=budget, d_model=16 + 8 * i, N_total=v, loss=q(v), **one_seed)
            for i, v in enumerate(n)]
    rows += [dict(arch="moe", budget_flops=budget, d_model=16 + 8 * i, N_total=v, loss=l, **one_seed)
             for i, (v, l) in enumerate(moe_rows)]
    return rows, q


def test_matched_memory_limits_the_dense_model_to_the_moe_total():
    free, _ = _memory_points(300_000, [(2_000_000, 3.4), (3_000_000, 3.45)], 1e16)  # the limit is past the vertex
    limited, q = _memory_points(1_000_000, [(900_000, 3.9), (400_000, 0.0)], 1e17)  # the limit is below it
    limited[-1]["loss"] = q(400_000) + 0.05  # MoE's best run, 0.05 worse than the dense model at its size
    table = compare.matched_memory(pd.DataFrame(free + limited)).set_index("budget_flops")
    a, b = table.loc[1e16], table.loc[1e17]
    assert (a.memory_params, a.moe_loss, a.moe_d_model) == (2_000_000, 3.4, 16)
    assert a.dense_loss == pytest.approx(3.5, abs=1e-5) and a.dense_N_total == pytest.approx(300_000, rel=0.01)
    assert not a.dense_limited and a.winner == "moe"
    assert (b.memory_params, b.moe_d_model) == (400_000, 24)
    assert b.dense_N_total == pytest.approx(400_000, rel=1e-12) and b.dense_loss == pytest.approx(q(400_000), abs=1e-9)
    assert b.dense_limited and b.winner == "dense"
    assert (table.dense_N_total <= table.memory_params * (1 + 1e-12)).all()
    assert ((table.winner == "moe") == (table.moe_loss < table.dense_loss)).all()


def test_matched_memory_never_returns_a_dense_model_over_the_limit():
    rows, _ = _memory_points(300_000, [(50_000, 3.6)], 1e16)
    row = compare.matched_memory(pd.DataFrame(rows)).iloc[0]
    assert row.memory_params == 50_000
    assert math.isnan(row.dense_N_total) and math.isnan(row.dense_loss) and row.dense_limited
    assert row.winner == "moe"  # nothing dense of the sweep fits in 50,000 parameters


def test_matched_wall_clock_at_equal_speed_is_matched_flops(moe_wins):
    points, table, _ = moe_wins
    timing = [dict(d_model=c.d_model, moe_over_dense=1.0) for c in LADDER[:10]]
    out = compare.matched_wall_clock(points, timing, table)
    assert list(out.moe_flops) == list(BUDGETS) and not out.extrapolated.any()
    assert list(out.moe_loss) == pytest.approx(list(table.moe_L_opt), abs=1e-12)
    assert list(out.dense_loss) == list(table.dense_L_opt) and (out.winner == "moe").all()


def test_matched_wall_clock_at_half_speed_interpolates_in_log_c(moe_wins):
    points, table, truth = moe_wins
    timing = [dict(d_model=c.d_model, moe_over_dense=2.0) for c in LADDER[:10]]
    out = compare.matched_wall_clock(points, timing, table)
    moe_l = [truth[b][1] - 0.05 for b in BUDGETS]  # 3.95, 3.65, 3.35: budgets a decade apart
    step = math.log(2) / math.log(10)
    assert out.moe_flops.iloc[0] == BUDGETS[0] / 2 and out.time_ratio.iloc[0] == 2.0
    assert out.extrapolated.tolist() == [True, False, False]
    assert out.moe_loss.iloc[0] == pytest.approx(moe_l[0] - (moe_l[1] - moe_l[0]) * step, abs=1e-9)
    assert out.moe_loss.iloc[1] == pytest.approx(moe_l[1] - (moe_l[1] - moe_l[0]) * step, abs=1e-9)
    assert out.winner.iloc[0] == "dense"  # 3.95 + 0.3 * 0.301 = 4.04 against dense's 4.0
    assert (out.winner.iloc[1:] == "dense").all()  # 3.65 + 0.09 against 3.7, 3.35 + 0.09 against 3.4
