"""IsoFLOP planning, resumable sweeps, the three-approach fit of a sweep, and the held-out prediction."""
import math
import threading

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.scaling import sweep as sw
from cot_lab.scaling.sweep_fit import fit_sweep, holdout_prediction
from cot_lab.core.runs import Run
from cot_lab.core.law import ScalingLaw


def test_size_ladder_is_like_for_like():
    ladder = cl.size_ladder()
    counts = [cl.count_params(c) for c in ladder]
    assert [(c.d_model, c.n_layer) for c in ladder[:4]] == [(16, 2), (24, 3), (32, 4), (40, 5)]
    assert [n.total for n in counts[:4]] == [14928, 33192, 66848, 120120]
    for cfg in ladder:
        assert cfg.n_layer >= 2 and cfg.head_dim == 8 and cfg.d_model / cfg.n_layer == 8  # one aspect, one head size
    for a, b in zip(ladder, ladder[1:]):
        assert b.d_model > a.d_model and b.n_layer > a.n_layer
    share = [n.embedding / n.total for n in counts]
    assert share[0] == pytest.approx(0.549, abs=1e-3) and all(np.diff(share) < 0)  # the embedding share falls


def test_ladder_flops_per_token_is_the_trainers_count_at_every_rung():
    cost = cl.ladder_flops_per_token()
    for cfg in cl.size_ladder():
        assert cost(cl.count_params(cfg).total) == pytest.approx(cl.flops_per_token(cfg), rel=1e-12)
    ratio = [cl.flops_per_token(c) / (6 * cl.count_params(c).total) for c in cl.size_ladder()[:8]]
    assert 1.3 < min(ratio) < max(ratio) < 1.61  # 6N undercounts these models by 30-60%
    with pytest.raises(ValueError, match="seq_len"):
        cl.ladder_flops_per_token(seq_len=0)


def test_law_optimum_under_the_trainers_count_costs_c():
    cost = cl.ladder_flops_per_token()
    for c in (3e11, 1e12, 1e13):
        n, d = TRUE.optimal(c, flops_per_token=cost)
        assert cost(n) * d == pytest.approx(c, rel=1e-9)
        # it is the minimum of the loss along that IsoFLOP line, found independently on a grid
        grid = np.geomspace(n / 3, n * 3, 2001)
        best = grid[np.argmin(TRUE.loss(grid, c / cost(grid)))]
        assert n == pytest.approx(best, rel=3e-3)
        six_n = TRUE.optimal(c)[0]
        assert n < six_n  # counted as the trainer counts, each parameter costs more: the optimum is smaller
    # with the 6N count it is the closed form
    n6, d6 = TRUE.optimal(1e12, flops_per_token=lambda n: 6.0 * n)
    assert (n6, d6) == pytest.approx(TRUE.optimal(1e12), rel=1e-5)
    with pytest.raises(ValueError, match="flops_per_token"):
        TRUE.optimal(1e12, flops_per_token=6.0)


def test_batch_rule_values():
    # 256 tokens at 1e11 FLOPs growing as C^0.3271 (DeepSeek's exponent), at least 2 sequences
    assert cl.batch_size_for(1e11, 128) == 2
    assert cl.batch_size_for(3e11, 128) == 3  # 256 * 3^0.3271 / 128 = 2.86
    assert cl.batch_size_for(1e12, 128) == 4  # 4.25
    assert cl.batch_size_for(1e15, 128) == round(256 * 1e4 ** 0.3271 / 128)
    assert cl.batch_size_for(1e9, 128) == 2


def test_plan_centres_each_budget_on_the_predicted_optimum():
    plan = sw.isoflop_plan([5e11, 1e12, 2e12, 4e12], 7, n_opt=(7e4, 0.65))
    frame = plan.to_frame()
    assert len(plan) == 28 and plan.budgets == [5e11, 1e12, 2e12, 4e12]
    assert plan.total_flops == pytest.approx(7 * (5e11 + 1e12 + 2e12 + 4e12))
    ladder = [cl.count_params(c).total for c in cl.size_ladder()]
    for c, group in frame.groupby("budget_flops"):
        n = group["n_params"].to_numpy()
        centre = 7e4 * (c / 1e12) ** 0.65
        nearest = min(range(len(ladder)), key=lambda i: abs(math.log(ladder[i] / centre)))
        first = max(0, nearest - 3)
        assert list(n) == ladder[first:first + 7]  # 7 consecutive rungs, 3 each side unless at the bottom
        assert (group["steps"] >= sw.MIN_STEPS).all()
        assert group["batch_size"].nunique() == 1  # one batch per budget: a curve compares sizes only
    point = plan.points[7]
    assert point.tokens == pytest.approx(point.flops / cl.flops_per_token(point.config))


def test_plan_centred_by_tokens_per_param_counts_flops_as_the_trainer_does():
    plan = sw.isoflop_plan([1e12], 3, tokens_per_param=20)
    middle = plan.points[1]
    ladder = [cl.count_params(c).total for c in cl.size_ladder()]
    cost = cl.ladder_flops_per_token()
    ratio = [1e12 / cost(n) / n for n in ladder]  # tokens per parameter of each rung at 1e12 FLOPs
    nearest = min(range(len(ladder)), key=lambda i: abs(math.log(ratio[i] / 20)))
    assert middle.n_params == ladder[nearest]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(budgets=[]), "budgets"),
    (dict(budgets=[1e11, -1.0]), "budgets"),
    (dict(budgets="1e11"), "budgets"),
    (dict(budgets=[1e11], sizes_per_budget=2), "sizes_per_budget"),
    (dict(budgets=[1e11], tokens_per_param=0), "tokens_per_param"),
    (dict(budgets=[1e11], n_opt=(1e4,)), "n_opt"),
    (dict(budgets=[1e11], n_opt=(1e4, 0.5), tokens_per_param=20), "not both"),
    (dict(budgets=[1e11], batch_size=0), "batch_size"),
    (dict(budgets=[1e8]), "steps"),
])
def test_plan_validates(kwargs, needle):
    budgets = kwargs.pop("budgets")
    with pytest.raises(ValueError, match=needle):
        sw.isoflop_plan(budgets, **kwargs)


def tiny_plan():
    return sw.isoflop_plan([2e9, 6e9], 3, tokens_per_param=20, seq_len=32)


@pytest.mark.parametrize("how", ["interrupt", "stop button"])
def test_sweep_resumes_after_an_interrupt(synthetic, tmp_path, how):
    store = cl.RunStore(tmp_path / "store")
    plan = tiny_plan()
    stop, seen = threading.Event(), []

    def report(fraction, text, force=False):  # what a panel's bar receives, after every step of run 4 too
        seen.append((fraction, text))
        if text.startswith("3 of 6 runs done · 1 training") and sum(t == text for _, t in seen) == 5:
            if how == "interrupt":
                raise KeyboardInterrupt  # the notebook's Stop, in the middle of run 4
            stop.set()  # the panel's Stop button

    first = sw.run_sweep(plan, synthetic, store, progress=False, report=report, stop=stop)
    assert first.interrupted and len(first.runs) == 4
    assert [r.status for r in first.runs] == ["ok"] * 3 + ["interrupted"]
    assert first.runs[3].steps == 5  # either way, no step after the one that saw the Stop
    assert store.get(first.runs[3].run_id).status == "interrupted"
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and 0 < fractions[-1] < 1  # one bar, only forwards, not finished

    second = sw.run_sweep(plan, synthetic, store, progress=False)
    assert not second.interrupted and len(second.runs) == len(plan)
    assert [r.from_store for r in second.runs] == [True] * 3 + [False] * 3  # the partial run trains again
    assert all(r.status == "ok" for r in second.runs)
    assert [r.final_val_loss for r in second.runs[:3]] == [r.final_val_loss for r in first.runs[:3]]
    frame = second.to_frame()
    assert list(frame["budget_flops"]) == [p.flops for p in plan]
    assert (frame["flops"] <= frame["budget_flops"] * 1.0000001).all()
    assert second.runs[0].load_model() is not None  # a sweep keeps records; models come back from the store

    third = sw.run_sweep(plan, synthetic, store, progress=False)
    assert all(r.from_store for r in third.runs) and third.train_s == 0.0


def test_sweep_rejects_budget_overrides(synthetic):
    with pytest.raises(ValueError, match="flops"):
        sw.run_sweep(tiny_plan(), synthetic, flops=1e9)
    with pytest.raises(ValueError, match="plan"):
        sw.run_sweep([1e9], synthetic)


# ---------------------------------------------------------------- fitting a sweep

TRUE = ScalingLaw(E=3.0, A=60.0, B=900.0, alpha=0.35, beta=0.40)  # a = 0.533


def fake_sweep(law, noise=0.004, seed=0):
    """Runs on the real size ladder at 6 budgets, losses from `law` times log-normal noise, with val curves."""
    rng = np.random.default_rng(seed)
    runs = []
    plan = sw.isoflop_plan(np.logspace(12.5, 15, 6), 7,
                           n_opt=lambda c: law.optimal(c, flops_per_token=cl.ladder_flops_per_token())[0])
    for i, p in enumerate(plan):
        fpt = cl.flops_per_token(p.config)
        tokens = np.linspace(0.1, 1.0, 10) * p.tokens
        losses = law.loss(p.n_params, tokens) * np.exp(rng.normal(0, noise, 10))
        runs.append(Run(run_id=f"r{i}", config=p.config, corpus="synthetic", corpus_fingerprint="x",
                        budget={"kind": "flops", "value": p.flops}, tokens=int(p.tokens),
                        hparams={"lr": cl.default_lr(p.config), "batch_size": p.batch_size, "seed": 0},
                        flops=p.tokens * fpt, val_curve=[[j, float(t), float(l)] for j, (t, l) in enumerate(zip(tokens, losses))],
                        final_val_loss=float(losses[-1]), entropy=3.0))
    return runs


@pytest.fixture(scope="module")
def fitted():
    return fit_sweep(fake_sweep(TRUE), bootstrap=60, seed=2)


def test_fit_sweep_recovers_known_exponents(fitted):
    law = fitted.approach3
    assert law.a == pytest.approx(TRUE.a, abs=0.04)
    low, high = law.intervals["a"]
    assert low <= TRUE.a <= high and high - low < 0.2
    assert law.E == pytest.approx(3.0, abs=0.08)
    assert fitted.approach2["a"] == pytest.approx(TRUE.a, abs=0.08)
    assert fitted.approach2["interior"].all()
    assert fitted.approach1 is not None and 0.2 < fitted.approach1["a"] < 0.9
    assert fitted.budgets == sorted(fitted.budgets) and len(fitted.budgets) == 6
    ev = fitted.e_versus_entropy()
    assert ev["entropy"] == 3.0 and ev["inside"] == (ev["E_low"] <= 3.0 <= ev["E_high"])
    table = fitted.exponents()
    assert table["source"].str.startswith("this sweep").sum() == 3
    assert "Kaplan 2020" in set(table["source"])


def test_fit_sweep_needs_finished_runs():
    runs = fake_sweep(TRUE)[:4]
    with pytest.raises(ValueError, match="at least 5"):
        fit_sweep(runs)
    with pytest.raises(ValueError, match="runs must be"):
        fit_sweep([1, 2, 3, 4, 5])


def test_holdout_prediction_is_the_laws_best_ladder_shape():
    pred = holdout_prediction(TRUE, 4e13)
    candidates = [(TRUE.loss(cl.count_params(c).total, 4e13 / cl.flops_per_token(c)), c) for c in cl.size_ladder()]
    best_loss, best_cfg = min(candidates, key=lambda t: t[0])
    assert pred["config"] == best_cfg and pred["predicted_loss"] == pytest.approx(best_loss, rel=1e-12)
    assert pred["tokens"] == pytest.approx(4e13 / cl.flops_per_token(best_cfg))
    assert pred["batch_size"] == cl.batch_size_for(4e13, 128)
    assert pred["n_opt_law"] == pytest.approx(TRUE.optimal(4e13, flops_per_token=cl.ladder_flops_per_token())[0], rel=1e-6)
    with pytest.raises(ValueError, match="flops"):
        holdout_prediction(TRUE, -1.0)


def test_parallel_workers_give_the_same_runs(synthetic, tmp_path):
    plan = tiny_plan()
    one = sw.run_sweep(plan, synthetic, cl.RunStore(tmp_path / "one"), progress=False)
    two = sw.run_sweep(plan, synthetic, cl.RunStore(tmp_path / "two"), progress=False, workers=2)
    assert not two.interrupted and [r.run_id for r in two.runs] == [r.run_id for r in one.runs]
    assert all(not r.from_store and r.status == "ok" for r in two.runs)
    # same seeds and data; only the threads per run differ (summation order)
    np.testing.assert_allclose([r.final_val_loss for r in two.runs], [r.final_val_loss for r in one.runs], rtol=2e-3)
    again = sw.run_sweep(plan, synthetic, cl.RunStore(tmp_path / "two"), progress=False, workers=2)
    assert all(r.from_store for r in again.runs)
    with pytest.raises(ValueError, match="workers"):
        sw.run_sweep(plan, synthetic, workers=0)


# shares of wall time that are true when runs run side by side (notebook 02)
def _timed_run(i: int, wall_s: float, train_s: float, from_store: bool = False):
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=1, vocab_size=512, seq_len=32)
    return cl.Run(run_id=f"r{i}", config=cfg, corpus="synthetic", corpus_fingerprint="x",
                  budget={"kind": "flops", "value": 1e9}, hparams={}, wall_s=wall_s, train_s=train_s,
                  from_store=from_store)


def test_sweep_shares_are_of_the_runs_own_time_when_runs_run_side_by_side():
    # two workers: 4 runs of 100 s (90 s training each) in 210 s of wall time, plus one run from the store
    result = sw.SweepResult([_timed_run(i, 100.0, 90.0) for i in range(4)] + [_timed_run(9, 5.0, 4.0, True)],
                         wall_s=210.0)
    assert result.train_s == 360.0 and result.runs_s == 400.0
    assert result.train_s / result.wall_s > 1.7  # the old "share of wall time": 171%, not a share at all
    assert result.train_share == pytest.approx(0.9) and result.concurrency == pytest.approx(400 / 210)
    assert result.timing() == ("5 runs in 210 s (4 trained now, 1.9 at a time on average); 90% of those runs' "
                               "own 400 s was training steps, the rest evaluation and bookkeeping")
    cached = sw.SweepResult([_timed_run(0, 100.0, 90.0, True)], wall_s=0.2)
    assert math.isnan(cached.train_share) and "nothing trained now" in cached.timing()
