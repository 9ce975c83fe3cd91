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


def test_size_ladder_grows_about_2x_without_shrinking():
    ladder = cl.size_ladder()
    counts = [cl.count_params(c).total for c in ladder]
    assert (ladder[0].d_model, ladder[0].n_layer, counts[0]) == (8, 1, 4952)
    ratios = np.array(counts[1:]) / np.array(counts[:-1])
    assert ratios.min() >= 1.98 and ratios.max() < 2.6
    for a, b in zip(ladder, ladder[1:]):
        assert b.d_model >= a.d_model and b.n_layer >= a.n_layer


def test_batch_rule_values():
    # 256 tokens at 1e11 FLOPs growing as C^0.3271 (DeepSeek's exponent), at least 2 sequences
    assert cl.batch_size_for(1e11, 128) == 2
    assert cl.batch_size_for(3e11, 128) == 3  # 256 * 3^0.3271 / 128 = 2.86
    assert cl.batch_size_for(1e12, 128) == 4  # 4.25
    assert cl.batch_size_for(1e15, 128) == round(256 * 1e4 ** 0.3271 / 128)
    assert cl.batch_size_for(1e9, 128) == 2


def test_plan_brackets_the_guess_with_sizes_2x_apart():
    plan = sw.isoflop_plan([3e10, 1e11, 3e11, 1e12], 5, tokens_per_param=20)
    frame = plan.to_frame()
    assert len(plan) == 20 and plan.budgets == [3e10, 1e11, 3e11, 1e12]
    assert plan.total_flops == pytest.approx(5 * (3e10 + 1e11 + 3e11 + 1e12))
    for c, group in frame.groupby("budget_flops"):
        n = group["n_params"].to_numpy()
        assert len(n) == 5 and np.all(n[1:] / n[:-1] >= 1.98)
        guess = math.sqrt(c / (6 * 20))
        assert n.min() < guess < n.max()
        assert (group["steps"] >= sw.MIN_STEPS).all()
        assert group["batch_size"].nunique() == 1  # one batch per budget: a curve compares sizes only
    point = plan.points[7]
    assert point.tokens == pytest.approx(point.flops / cl.flops_per_token(point.config))


@pytest.mark.parametrize("kwargs, needle", [
    (dict(budgets=[]), "budgets"),
    (dict(budgets=[1e11, -1.0]), "budgets"),
    (dict(budgets="1e11"), "budgets"),
    (dict(budgets=[1e11], sizes_per_budget=2), "sizes_per_budget"),
    (dict(budgets=[1e11], tokens_per_param=0), "tokens_per_param"),
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
    plan = sw.isoflop_plan(np.logspace(11, 13.5, 6), 7, tokens_per_param=float(law.tokens_per_param(1e12)))
    for i, p in enumerate(plan):
        fpt = cl.flops_per_token(p.config)
        tokens = np.linspace(0.1, 1.0, 10) * p.tokens
        losses = law.loss(p.n_params, tokens) * np.exp(rng.normal(0, noise, 10))
        runs.append(Run(run_id=f"r{i}", config=p.config, corpus="synthetic", corpus_fingerprint="x",
                        budget={"kind": "flops", "value": p.flops}, hparams={}, tokens=int(p.tokens),
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
    assert pred["n_opt_law"] == pytest.approx(TRUE.optimal(4e13)[0])
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
