"""Extractable memorisation (Carlini et al. 2022): greedy continuations, exact matches, and the log-linear curve.

Greedy decoding is checked against a hand loop on a random model; the match counts on rows built from the model's
own continuations; memorisation itself by a real (tiny) cl.train on synthetic-v3 with rows planted 1, 60 and 200
times; the curve fit on synthetic rates of known slope.
"""
import numpy as np
import pytest
import torch

import cot_lab as cl
from cot_lab.evaluation.memorisation import (Continuations, MemorisationCurve, continuation_matches,
                                             exact_match_rate, greedy_continuation, leading_match_fraction,
                                             memorisation_curve)

PREFIX, SUFFIX = 32, 16
T = PREFIX + SUFFIX  # seq_len of the trained model; planted rows have T + 1 tokens


@pytest.fixture(scope="module")
def corpus():
    return cl.load_corpus("synthetic-v3")


@pytest.fixture(scope="module")
def model():
    cfg = cl.ModelConfig(d_model=32, n_layer=1, n_head=2, seq_len=64, vocab_size=512)
    return cl.build_model(cfg, seed=0)


@pytest.fixture(scope="module")
def prefixes():
    return torch.randint(0, 512, (7, 20), generator=torch.Generator().manual_seed(0))


def hand_greedy(model, prefix, suffix):
    """One row at a time: argmax of the logits at the last position, appended, repeated."""
    ids = prefix[None].clone()
    with torch.no_grad():
        for _ in range(suffix):
            logits = model(input_ids=ids).logits[0, -1]
            ids = torch.cat([ids, torch.tensor([[int(torch.argmax(logits))]])], dim=1)
    return ids[0, prefix.shape[0]:]


def test_greedy_continuation_agrees_with_a_hand_loop(model, prefixes):
    model.train()  # greedy_continuation must switch to eval and back
    got = greedy_continuation(model, prefixes, 9, batch_size=3)  # 3 batches, the last one short
    assert got.dtype == torch.int64 and got.shape == (7, 9) and model.training
    model.eval()
    want = torch.stack([hand_greedy(model, p, 9) for p in prefixes])
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert all(p.grad is None for p in model.parameters())
    # a numpy or list prefix is the same prompt
    torch.testing.assert_close(greedy_continuation(model, prefixes.numpy().tolist(), 9), want, rtol=0, atol=0)


def test_rows_built_from_the_models_own_continuation_match_exactly(model, prefixes):
    rows = torch.cat([prefixes, greedy_continuation(model, prefixes, 12)], dim=1)  # [7, 32]
    out = continuation_matches(model, rows, prefix=20, suffix=12)
    assert isinstance(out, Continuations) and out.n_rows == 7
    assert out.matched.tolist() == [12] * 7 and out.exact.all()
    assert exact_match_rate(model, rows, prefix=20, suffix=12) == 1.0
    assert leading_match_fraction(model, rows, prefix=20, suffix=12) == 1.0
    # a wrong first suffix token: nothing extracted, whatever follows
    first_wrong = rows.clone()
    first_wrong[:, 20] = (first_wrong[:, 20] + 1) % 512
    out = continuation_matches(model, first_wrong, prefix=20, suffix=12)
    assert out.matched.tolist() == [0] * 7 and out.exact_match_rate == 0.0 and out.leading_match_fraction == 0.0
    # a wrong token at suffix position j: exactly j matched (the prompt and the tokens before j are the model's own)
    cut = rows.clone()
    where = [0, 3, 5, 11, 1, 7, 2]
    for i, j in enumerate(where):
        cut[i, 20 + j] = (cut[i, 20 + j] + 1) % 512
    out = continuation_matches(model, cut, prefix=20, suffix=12)
    assert out.matched.tolist() == where and not out.exact.any()
    assert out.leading_match_fraction == pytest.approx(np.mean(where) / 12)
    # longer rows: only their first prefix + suffix tokens count, even past the model's context
    longer = torch.cat([rows, torch.zeros(7, 60, dtype=torch.int64)], dim=1)  # 92 tokens > 64 + 1
    assert exact_match_rate(model, longer, prefix=20, suffix=12) == 1.0


@pytest.fixture(scope="module")
def planted_run(corpus):
    """A tiny model trained on synthetic-v3 with 8 validation rows planted 1 time, 8 planted 60 times and 8 planted
    200 times (nested contaminations: each base keeps its plants), and the rows of each group; 40 rows unseen."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # this machine is shared; one thread is as fast here for a model this small
    try:
        val = corpus.val_batch(64, T)
        groups = {1: val[0:8], 60: val[8:16], 200: val[16:24]}
        source, horizon = corpus, 6400  # 800 steps of 8 rows; 2088 of the 6400 rows are plants
        for seed, (copies, rows) in enumerate(groups.items()):
            source, _ = cl.contaminate(source, rows, copies=copies, seed=seed, horizon=horizon)
        cfg = cl.ModelConfig(d_model=64, n_layer=2, n_head=2, seq_len=T, vocab_size=corpus.vocab_size)
        # lr 2e-3, below default_lr (7.4e-3), which left even the 200-copy rows unmemorised in 800 steps
        run = cl.train(cfg, source, tokens=horizon * T, batch_size=8, seed=0, lr=2e-3, precision="fp32",
                       progress=False, eval_sequences=8, compile=False)
        return run, {**groups, 0: val[24:]}
    finally:
        torch.set_num_threads(threads)


def test_rows_planted_many_times_are_memorised_and_unseen_rows_are_not(planted_run):
    run, groups = planted_run
    out = {c: continuation_matches(run, rows, PREFIX, SUFFIX) for c, rows in groups.items()}
    for c in sorted(out):
        print(f"copies {c:3d}: exact {out[c].exact_match_rate:.3f}, leading {out[c].leading_match_fraction:.3f}, "
              f"matched {out[c].matched.tolist()}")
    curve = memorisation_curve([1, 60, 200], [out[c].exact_match_rate for c in (1, 60, 200)], 8,
                               unseen_rate=out[0].exact_match_rate, unseen_rows=out[0].n_rows)
    print(curve.summary())
    # Measured (training seeds 0 and 1): 200 copies exact 1.0, leading 1.0; 60 copies exact 0, leading 0.12-0.15;
    # 1 copy exact 0, leading 0.04; unseen (40 rows) exact 0, leading 0.02-0.03 (a first token guessed now and then).
    assert out[200].exact_match_rate >= 0.75
    assert out[0].exact_match_rate <= 0.05 and out[1].exact_match_rate <= 0.25
    assert out[200].leading_match_fraction - out[0].leading_match_fraction > 0.6
    assert out[200].leading_match_fraction - out[60].leading_match_fraction > 0.3
    assert curve.slope > 0 and curve.unseen_rate <= 0.05


def test_the_curve_recovers_an_exact_log_linear_slope():
    copies = np.array([1, 3, 10, 30, 100])
    curve = memorisation_curve(copies, 0.05 + 0.3 * np.log10(copies), [50, 50, 40, 40, 30])
    assert isinstance(curve, MemorisationCurve) and curve.method == "binomial"
    assert curve.slope == pytest.approx(0.3, abs=1e-12) and curve.intercept == pytest.approx(0.05, abs=1e-12)
    assert curve.rate(10) == pytest.approx(0.35) and isinstance(curve.rate(10), float)
    np.testing.assert_allclose(curve.rate([1, 100, 10_000]), [0.05, 0.65, 1.0])  # clipped at 1
    assert 0 < curve.slope_se < 0.1 and curve.unseen_rate is None
    frame = curve.frame()
    assert list(frame.columns) == ["n_rows", "rate", "se", "fitted"] and len(frame) == 5
    np.testing.assert_allclose(frame.fitted, frame.rate)


def test_the_curve_recovers_a_noisy_slope_within_its_standard_error():
    rng = np.random.default_rng(0)
    copies, n = np.array([1, 2, 5, 10, 20, 50, 100]), 200
    p = 0.02 + 0.25 * np.log10(copies)
    inside, slopes = [], []
    for _ in range(400):
        curve = memorisation_curve(copies, rng.binomial(n, p) / n, n, unseen_rate=0.0, unseen_rows=n)
        inside.append(abs(curve.slope - 0.25) < 2 * curve.slope_se)
        slopes.append(curve.slope)
    first = memorisation_curve(copies, np.random.default_rng(1).binomial(n, p) / n, n)
    print(f"slope {first.slope:.4f} +- {first.slope_se:.4f} (true 0.25); 2-se coverage {np.mean(inside):.3f}, "
          f"sd of slopes {np.std(slopes):.4f}")
    assert abs(first.slope - 0.25) < 3 * first.slope_se
    assert 0.9 <= np.mean(inside) <= 0.99  # ~95% if the binomial standard error is right
    assert np.std(slopes) == pytest.approx(first.slope_se, rel=0.2)


@pytest.mark.parametrize("kwargs, match", [
    ({"prefix": 0}, "prefix=0"),
    ({"suffix": 0}, "suffix=0"),
    ({"prefix": 1.5}, "prefix=1.5"),
    ({"prefix": 60, "suffix": 6}, r"prefix=60 \+ suffix=6 .* context of 64"),
    ({"rows": np.zeros((4, 40), np.int64)}, r"rows have 40 tokens, fewer than prefix \+ suffix"),
    ({"rows": np.zeros((0, 49), np.int64)}, "rows is empty"),
    ({"rows": []}, "rows is empty"),
    ({"rows": np.full((2, 49), 600)}, "vocabulary"),
    ({"rows": np.zeros((2, 49))}, "dtype"),
    ({"batch_size": 0}, "batch_size"),
])
def test_bad_rows_and_lengths_name_the_argument(model, kwargs, match):
    args = {"rows": np.zeros((2, 49), np.int64), "prefix": PREFIX, "suffix": SUFFIX, **kwargs}
    with pytest.raises(ValueError, match=match):
        continuation_matches(model, args.pop("rows"), **args)


@pytest.mark.parametrize("prefixes, suffix, match", [
    (np.zeros((2, 8), np.int64), 0, "suffix=0"),
    (np.zeros((0, 8), np.int64), 4, "prefixes is empty"),
    (np.zeros(8, np.int64), 4, "prefixes must be int token rows"),
    (np.zeros((2, 60), np.int64), 6, r"prefix=60 \+ suffix=6"),
])
def test_bad_prefixes_name_the_argument(model, prefixes, suffix, match):
    with pytest.raises(ValueError, match=match):
        greedy_continuation(model, prefixes, suffix)
    greedy_continuation(model, np.zeros((1, 60), np.int64), 5)  # 64 positions: just fits


@pytest.mark.parametrize("args, kwargs, match", [
    (([1, 10], [0.1], 8), {}, "rates has 1 values but copies has 2"),
    (([0, 1, 10], [0.0, 0.1, 0.4], 8), {}, r"copies=\[0.0, 1.0, 10.0\] holds values below 1.*unseen_rate"),
    (([1, 10], [0.1, 1.2], 8), {}, "rates must be"),
    (([5, 5], [0.1, 0.2], 8), {}, "one distinct value"),
    (([1, 10], [0.1, 0.2], [8, 8, 8]), {}, "n_rows has 3 values"),
    (([1, 10], [0.1, 0.2], 0), {}, "n_rows=0"),
    (([], [], 8), {}, "copies must be"),
    (([1, 10], [0.1, 0.2], 8), {"unseen_rate": 1.5}, "unseen_rate"),
])
def test_bad_curve_input_names_the_argument(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        memorisation_curve(*args, **kwargs)


def test_the_curve_refuses_a_rate_at_zero_copies():
    curve = memorisation_curve([1, 10], [0.1, 0.4], 8, unseen_rate=0.0)
    with pytest.raises(ValueError, match="unseen_rate"):
        curve.rate(0)
