"""The evaluation gate (silent regressions): per-document losses of a model, and the paired bootstrap verdicts.

The gate's inputs are per-document losses constructed with numpy, so the truth of every slice is known; the
expected means, differences and interval widths are computed here from the constructed arrays (numpy and the
normal approximation of the mean, z = 1.645 for 90%), sharing no code with the gate. `document_losses` is
checked against a cross-entropy written out with torch.nn.functional, and against the kit's validation loss.
"""
import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cot_lab as cl
from cot_lab.evaluation import GateReport, SliceResult, document_losses, evaluation_gate, evaluation_gate_from_losses

SLICES = ("in-distribution", "shifted", "contamination-free")
Z = {0.9: 1.645, 0.95: 1.960}  # standard normal quantiles at 0.95 and 0.975


def _paired(rng, n, base_sd=1.0, **shift):
    """(baseline, candidate) {slice: [n]}: baseline losses spread widely between documents, the candidate
    shifted by shift[slice] (nats/token) plus small per-document noise (sd 0.02) of exactly zero mean."""
    base, cand = {}, {}
    for name in SLICES:
        b = rng.normal(4.0, base_sd, n).clip(0.05)
        noise = rng.normal(0.0, 0.02, n)
        base[name], cand[name] = b, b + shift.get(name.replace("-", "_"), 0.0) + noise - noise.mean()
    return base, cand


def _normal_half_width(d, confidence=0.9):
    return Z[confidence] * np.std(d, ddof=1) / math.sqrt(len(d))


def test_the_gate_fails_a_candidate_that_improves_the_headline_but_regresses_a_slice():
    rng = np.random.default_rng(0)
    base, cand = _paired(rng, 400, in_distribution=-0.05, shifted=+0.08)
    report = evaluation_gate_from_losses(base, cand)
    assert isinstance(report, GateReport) and report.headline == "in-distribution"
    assert [s.name for s in report.slices] == list(SLICES)
    assert [s.verdict for s in report.slices] == ["better", "worse", "no change"]
    assert report.passed is False and report.failed == ["shifted"]
    for name in SLICES:
        s, d = report[name], cand[name] - base[name]
        assert s.n_documents == 400
        assert s.baseline_loss == pytest.approx(base[name].mean(), abs=1e-12)
        assert s.candidate_loss == pytest.approx(cand[name].mean(), abs=1e-12)
        assert s.difference == pytest.approx(d.mean(), abs=1e-12)
        half = _normal_half_width(d)
        assert (s.hi - s.lo) / 2 == pytest.approx(half, rel=0.15)
        assert (s.lo + s.hi) / 2 == pytest.approx(d.mean(), abs=0.2 * half)
    # paired: the interval measures the change, not the spread between documents (sd 1 nats/token here)
    shifted = report["shifted"]
    unpaired = 1.645 * math.sqrt((base["shifted"].var(ddof=1) + cand["shifted"].var(ddof=1)) / 400)
    assert (shifted.hi - shifted.lo) / 2 < unpaired / 10
    assert shifted.lo > report.tolerance == 0.01
    assert report["in-distribution"].difference == pytest.approx(-0.05, abs=1e-9)
    text = report.summary()
    assert text.startswith("Fails: 'shifted' is worse by +0.0800 nats/token") and "'in-distribution'" in text
    assert "though the headline 'in-distribution' changed by -0.0500 (better)" in text


def test_the_gate_passes_a_uniform_improvement():
    base, cand = _paired(np.random.default_rng(1), 300, in_distribution=-0.04, shifted=-0.04,
                         contamination_free=-0.04)
    report = evaluation_gate_from_losses(base, cand)
    assert report.passed is True and report.failed == []
    assert [s.verdict for s in report.slices] == ["better"] * 3
    for s in report.slices:
        assert s.difference == pytest.approx(-0.04, abs=1e-9) and s.hi < -report.tolerance
    assert report.summary().startswith("Passes: no slice is worse by more than 0.01 nats/token (90% intervals")


def test_pure_noise_around_zero_is_no_change_at_the_tolerance():
    rng = np.random.default_rng(2)
    base = {name: rng.normal(3.0, 0.5, 200).clip(0.05) for name in SLICES}
    noise = {name: rng.normal(0.0, 0.05, 200) for name in SLICES}
    cand = {name: base[name] + noise[name] - noise[name].mean() for name in SLICES}  # mean change exactly 0
    for tolerance in (0.01, 0.0):
        report = evaluation_gate_from_losses(base, cand, tolerance=tolerance)
        assert report.passed and [s.verdict for s in report.slices] == ["no change"] * 3
        for s in report.slices:
            assert abs(s.difference) < 1e-12 and s.lo < 0 < s.hi
            # 1.645 * 0.05 / sqrt(200) = 0.0058: the interval lies inside +-0.01
            assert (s.hi - s.lo) / 2 == pytest.approx(_normal_half_width(cand[s.name] - base[s.name]), rel=0.15)
            assert max(-s.lo, s.hi) < 0.01


def test_the_verdict_is_the_interval_against_plus_or_minus_the_tolerance():
    # a constant change of 0.02 nats/token: every resample has the same mean, so lo = hi = 0.02
    base = {"up": np.full(50, 3.0), "down": np.full(50, 3.0)}
    cand = {"up": np.full(50, 3.02), "down": np.full(50, 2.98)}
    tight = evaluation_gate_from_losses(base, cand, tolerance=0.019)
    assert tight["up"].lo == pytest.approx(0.02, abs=1e-12) and tight["up"].hi == pytest.approx(0.02, abs=1e-12)
    assert (tight["up"].verdict, tight["down"].verdict, tight.passed) == ("worse", "better", False)
    loose = evaluation_gate_from_losses(base, cand, tolerance=0.021)
    assert (loose["up"].verdict, loose["down"].verdict, loose.passed) == ("no change", "no change", True)
    # the headline itself regresses: the summary says so without a "though"
    assert tight.summary() == ("Fails: 'up' is worse by +0.0200 nats/token (90% interval +0.0200 to +0.0200, "
                               "above the tolerance 0.019).")


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_the_bootstrap_width_agrees_with_normal_theory_on_a_large_sample(confidence):
    rng = np.random.default_rng(3)
    base = rng.normal(3.0, 0.3, 10_000).clip(0.05)
    cand = base + rng.normal(0.01, 0.2, 10_000)
    d = cand - base
    s = evaluation_gate_from_losses({"all": base}, {"all": cand}, confidence=confidence)["all"]
    half, expected = (s.hi - s.lo) / 2, _normal_half_width(d, confidence)
    assert half == pytest.approx(expected, rel=0.15)
    assert abs((s.lo + s.hi) / 2 - d.mean()) < 0.15 * expected
    print(f"confidence {confidence}: bootstrap half-width {half:.5f}, normal {expected:.5f}, "
          f"ratio {half / expected:.3f}")


def test_seed_headline_frame_and_dict():
    base, cand = _paired(np.random.default_rng(4), 120, shifted=+0.05)
    a = evaluation_gate_from_losses(base, cand, seed=7)
    assert a == evaluation_gate_from_losses(base, cand, seed=7)
    b = evaluation_gate_from_losses(base, cand, seed=8)
    assert a["shifted"].lo != b["shifted"].lo and a["shifted"].lo == pytest.approx(b["shifted"].lo, abs=5e-4)
    named = evaluation_gate_from_losses(base, cand, headline="shifted")
    assert named.headline == "shifted" and named.headline_result.name == "shifted"
    frame = named.frame()
    assert list(frame.index) == list(SLICES) and frame.index.name == "slice"
    assert list(frame.columns) == ["n_documents", "baseline_loss", "candidate_loss", "difference", "lo", "hi",
                                   "verdict", "headline"]
    assert frame["headline"].tolist() == [False, True, False]
    assert frame.loc["shifted", "difference"] == pytest.approx((cand["shifted"] - base["shifted"]).mean())
    assert frame["verdict"].tolist() == [s.verdict for s in named.slices]
    record = json.loads(json.dumps(named.to_dict()))
    assert record["passed"] is False and record["headline"] == "shifted" and len(record["slices"]) == 3
    assert isinstance(named.slices[0], SliceResult)
    with pytest.raises(KeyError, match="no slice 'nope'"):
        named["nope"]


# --- per-document losses of a model ---------------------------------------------------------------------

TINY = dict(d_model=32, n_layer=1, n_head=2, vocab_size=64, seq_len=16)


@pytest.fixture(scope="module")
def tiny():
    return cl.build_model(cl.ModelConfig(**TINY), seed=0).eval()


def _rows(n, seed, vocab=64, length=17):
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


def _hand_losses(model, rows):
    """Each row's mean cross-entropy, written out: logits of rows[:, :-1], targets rows[:, 1:]."""
    with torch.no_grad():
        logits = model(input_ids=rows[:, :-1]).logits.float()
    return np.array([F.cross_entropy(logits[i], rows[i, 1:]).item() for i in range(rows.shape[0])])


def test_document_losses_equal_a_hand_written_cross_entropy(tiny):
    rows = _rows(6, seed=0)
    got = document_losses(tiny, rows, batch_size=4)  # two batches
    assert got.shape == (6,) and got.dtype == np.float64
    np.testing.assert_allclose(got, _hand_losses(tiny, rows), rtol=0, atol=1e-5)
    assert 3.5 < got.mean() < 5.0  # an untrained model sits near log(64) = 4.16
    np.testing.assert_allclose(document_losses(tiny, rows.numpy()), got, atol=1e-6)  # numpy rows too


def test_document_losses_average_to_the_kits_validation_loss(synthetic):
    model = cl.build_model(cl.ModelConfig(**{**TINY, "vocab_size": synthetic.vocab_size}), seed=0)
    rows = synthetic.val_batch(8, 16)
    got = document_losses(model, rows)
    assert got.mean() == pytest.approx(cl.evaluate_loss(model, synthetic, n_sequences=8, seq_len=16), abs=1e-6)


def test_document_losses_of_a_stored_run_load_its_checkpoint(tiny, tmp_path):
    store = cl.RunStore(tmp_path / "runs")
    store.save(cl.Run(run_id="gate-test", config=cl.ModelConfig(**TINY), corpus="synthetic",
                      corpus_fingerprint="none", budget={"kind": "tokens", "value": 0}, hparams={}), tiny)
    run = store.get("gate-test")
    rows = _rows(4, seed=1)
    np.testing.assert_allclose(document_losses(run, rows), document_losses(tiny, rows), atol=1e-6)


def test_the_gate_on_models_scores_both_on_the_same_documents(tiny):
    other = cl.build_model(cl.ModelConfig(**TINY), seed=1).eval()
    slices = {"a": _rows(8, seed=2), "b": _rows(6, seed=3)}
    report = evaluation_gate(tiny, other, slices, bootstrap=500)
    for name, rows in slices.items():
        d = _hand_losses(other, rows) - _hand_losses(tiny, rows)
        assert report[name].n_documents == rows.shape[0]
        assert report[name].difference == pytest.approx(d.mean(), abs=1e-5)
        assert report[name].baseline_loss == pytest.approx(_hand_losses(tiny, rows).mean(), abs=1e-5)
    same = evaluation_gate(tiny, tiny, slices, headline="b")
    assert same.passed and same.headline == "b"
    assert all(s.difference == 0 and s.lo == 0 and s.hi == 0 and s.verdict == "no change" for s in same.slices)


# --- bad input -------------------------------------------------------------------------------------------

def _ok(n=10):
    return {"x": np.full(n, 3.0)}


@pytest.mark.parametrize("kwargs, message", [
    (dict(confidence=0), "confidence=0 must be a finite number in (0, 1)"),
    (dict(confidence=1.0), "confidence=1.0 must be"),
    (dict(confidence=1.5), "confidence=1.5 must be"),
    (dict(confidence=float("nan")), "confidence=nan must be"),
    (dict(bootstrap=99), "bootstrap=99 must be an integer >= 100"),
    (dict(bootstrap=2000.0), "bootstrap=2000.0 must be"),
    (dict(bootstrap=True), "bootstrap=True must be"),
    (dict(tolerance=-0.01), "tolerance=-0.01 must be a finite number in [0, inf)"),
    (dict(seed=-1), "seed=-1 must be a non-negative integer"),
    (dict(headline="nope"), "headline='nope' is not a slice; use one of 'x'"),
])
def test_bad_settings_name_the_argument_and_what_works(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluation_gate_from_losses(_ok(), _ok(), **kwargs)


@pytest.mark.parametrize("base, cand, message", [
    ({"x": []}, {"x": []}, "baseline_losses['x'] must be a 1-D array of at least 2 per-document losses"),
    (_ok(10), _ok(9), "candidate_losses['x'] has 9 documents and baseline_losses['x'] 10: the gate is paired"),
    ({}, _ok(), "baseline_losses={} must be a non-empty dict of {slice name: per-document losses}, e.g."),
    (_ok(), {"y": np.full(10, 3.0)}, "must name the same slices; only in baseline_losses: ['x'], only in "
                                     "candidate_losses: ['y']"),
    (_ok(), {"x": [3.0] * 9 + [float("nan")]}, "candidate_losses['x'] must hold finite, non-negative losses"),
    (_ok(), {"x": [3.0] * 9 + [-1.0]}, "at documents [9]"),
    (_ok(), {"x": np.full((2, 5), 3.0)}, "got shape (2, 5)"),
])
def test_bad_losses_are_refused(base, cand, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluation_gate_from_losses(base, cand)


def test_bad_rows_and_models_are_refused_before_any_model_runs(tiny):
    calls = []
    hook = tiny.register_forward_hook(lambda *args: calls.append(1))
    try:
        good = _rows(4, seed=0)
        cases = [
            ({"x": good, "empty": torch.empty(0, 17, dtype=torch.int64)}, "slices['empty'] must be int token rows"),
            ({"x": good, "one": good[:1]}, "slices['one'] has 1 row"),
            ({"x": good, "float": good.float()}, "got dtype torch.float32"),
            ({"x": good, "flat": good[0]}, "shape (17,)"),
            ({"x": good, "big": good + 64}, "outside the model's vocabulary 0..63"),
            ({"x": good, "long": _rows(4, seed=0, length=18)}, "at most the model's context, 16"),
            ({}, "slices={} must be a non-empty dict"),
        ]
        for slices, message in cases:
            with pytest.raises(ValueError, match=re.escape(message)):
                evaluation_gate(tiny, tiny, slices)
        with pytest.raises(ValueError, match=re.escape("confidence=2 must be")):
            evaluation_gate(tiny, tiny, {"x": good}, confidence=2)
        with pytest.raises(ValueError, match=re.escape("candidate=str must be a model")):
            evaluation_gate(tiny, "model.safetensors", {"x": good})
        with pytest.raises(ValueError, match=re.escape("model_or_run=int must be a model")):
            document_losses(3, good)
        with pytest.raises(ValueError, match=re.escape("batch_size=0 must be a positive integer")):
            document_losses(tiny, good, batch_size=0)
        assert calls == []  # every refusal came before a forward pass
    finally:
        hook.remove()


def test_the_gate_is_public():
    for name in ("evaluation_gate", "evaluation_gate_from_losses", "GateReport", "document_losses"):
        assert name in cl.__all__ and getattr(cl, name) is not None
