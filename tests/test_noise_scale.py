"""McCandlish et al.'s gradient noise scale: the two-batch estimator against answers known without it."""
import math
import warnings

import pytest
import torch
from torch.func import functional_call, grad, vmap

import cot_lab as cl
from cot_lab.core.objective import next_token_loss
from cot_lab.hparams.noise_scale import NoiseScaleTracker, measure_noise_scale, two_batch_estimates

P, SIGMA = 10, 1.0  # linear regression: features, noise standard deviation


def test_two_batch_estimates_invert_the_expected_norms():
    # E|G_B|^2 = |G|^2 + tr(Sigma) / B: build the norms from known values and get them back exactly
    grad_sq, trace = 2.0, 30.0
    small, big = grad_sq + trace / 4, grad_sq + trace / 32
    assert two_batch_estimates(small, big, 4, 32) == pytest.approx((grad_sq, trace), rel=1e-12)
    with pytest.raises(ValueError, match="b_small"):
        two_batch_estimates(small, big, 32, 4)


def test_linear_regression_noise_scale_is_the_analytic_one_within_10_percent():
    # y = x.w* + sigma eps, x ~ N(0, I_p), loss (x.w - y)^2 / 2 at w = w* + d. One example's gradient is
    # g = x (x.d - sigma eps): G = E g = d, and by Isserlis' theorem E[g g^T] = 2 d d^T + (|d|^2 + sigma^2) I, so
    # Sigma = d d^T + (|d|^2 + sigma^2) I and B_simple = tr(Sigma) / |G|^2 = ((p + 1)|d|^2 + p sigma^2) / |d|^2.
    generator = torch.Generator().manual_seed(0)
    w_star = torch.randn(P, generator=generator, dtype=torch.float64)
    d = torch.ones(P, dtype=torch.float64) / math.sqrt(P)  # |d|^2 = 1
    w = (w_star + d).requires_grad_()
    analytic = ((P + 1) * 1.0 + P * SIGMA**2) / 1.0  # 21 examples

    def sample(n):
        x = torch.randn(n, P, generator=generator, dtype=torch.float64)
        return x, x @ w_star + SIGMA * torch.randn(n, generator=generator, dtype=torch.float64)

    def grad_fn(batch):
        x, y = batch
        return torch.autograd.grad(0.5 * ((x @ w - y) ** 2).mean(), [w])

    estimate = measure_noise_scale(grad_fn, sample, b_small=4, accumulate=8, measurements=3000)
    assert estimate.grad_norm_sq == pytest.approx(1.0, rel=0.10)
    assert estimate.trace_sigma == pytest.approx(analytic, rel=0.10)
    assert estimate.b_simple == pytest.approx(analytic, rel=0.10)
    assert (estimate.b_small, estimate.b_big, estimate.measurements) == (4, 32, 3000)


def exact_noise_scale(model, rows: torch.Tensor) -> float:
    """B_simple (sequences) from every sequence's own gradient (torch.func), unbiased in both terms."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p, row):  # row [T+1]: one sequence's mean next-token loss
        logits = functional_call(model, p, (row[None, :-1],)).logits
        return torch.nn.functional.cross_entropy(logits[0].float(), row[1:])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no batching rule for the CPU attention kernel: slower, not wrong
        per_sequence = vmap(grad(loss), in_dims=(None, 0))(params, rows)
    flat = torch.cat([g.reshape(len(rows), -1) for g in per_sequence.values()], dim=1).double()  # [n, params]
    n, mean = len(rows), flat.mean(0)
    trace = ((flat - mean) ** 2).sum() / (n - 1)
    grad_sq = mean.pow(2).sum() - trace / n
    return float(trace / grad_sq)


def test_language_model_estimate_matches_per_sequence_gradients_within_25_percent():
    corpus = cl.load_corpus("synthetic")
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=2, vocab_size=corpus.vocab_size, seq_len=16)
    model = cl.build_model(cfg, seed=0)
    # a few steps in, where the gradient is no longer the initialisation's
    cl.train(cfg, corpus, tokens=40 * 8 * 16, batch_size=8, init=model, progress=False)
    rows = next(corpus.train_batches(1024, cfg.seq_len, seed=7))  # [1024, T+1]
    exact = exact_noise_scale(model, rows)
    before = [p.detach().clone() for p in model.parameters()]
    estimate = cl.gradient_noise_scale(model, corpus, batch_size=4, accumulate=8, measurements=64)
    assert estimate.b_simple == pytest.approx(exact, rel=0.25), (estimate, exact)
    assert estimate.b_simple_tokens == estimate.b_simple * 16
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # measuring trains nothing
    assert all(p.grad is None for p in model.parameters())


def test_the_trainer_hook_reports_b_simple_as_the_run_goes():
    corpus = cl.load_corpus("synthetic")
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=2, vocab_size=corpus.vocab_size, seq_len=16)
    seen = []
    hook = cl.NoiseScaleCallback(corpus, every=10, batch_size=2, accumulate=4,
                                 on_measure=lambda step, tokens, e: seen.append((step, tokens)))
    run = cl.train(cfg, corpus, tokens=60 * 4 * 16, batch_size=4, callbacks=[hook], progress=False)
    assert run.status == "ok" and run.steps == 60
    assert [s for s, _ in seen] == [10, 20, 30, 40, 50, 60] == list(hook.frame()["step"])
    assert [t for _, t in seen] == [s * 4 * 16 for s in (10, 20, 30, 40, 50, 60)]
    frame = hook.frame()
    assert (frame["b_simple_tokens"] == frame["b_simple"] * 16).all()
    assert frame["trace_sigma"].gt(0).all()


def test_a_hooked_run_trains_exactly_as_an_unhooked_one():
    # the hook draws its own rows and keeps out of .grad: the run's losses do not move
    corpus = cl.load_corpus("synthetic")
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=2, vocab_size=corpus.vocab_size, seq_len=16)
    plain = cl.train(cfg, corpus, tokens=30 * 4 * 16, batch_size=4, progress=False, precision="fp32")
    hook = cl.NoiseScaleCallback(corpus, every=5, batch_size=2, accumulate=2)
    hooked = cl.train(cfg, corpus, tokens=30 * 4 * 16, batch_size=4, callbacks=[hook], progress=False,
                      precision="fp32")
    assert hooked.final_val_loss == plain.final_val_loss
    assert [c[2] for c in hooked.train_curve] == [c[2] for c in plain.train_curve]


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="ema"):
        NoiseScaleTracker(4, 32, ema=1.0)
    with pytest.raises(ValueError, match="accumulate"):
        cl.NoiseScaleCallback(cl.load_corpus("synthetic"), accumulate=1)
    with pytest.raises(ValueError, match="b_small"):
        NoiseScaleTracker(8, 8)
    tracker = NoiseScaleTracker(4, 32)
    assert tracker.estimate is None
    assert math.isnan(tracker.update(10.0, 1.0).b_simple)  # |G|^2 estimate not yet positive: no ratio
    assert math.isnan(NoiseScaleTracker(4, 32).update(1.0, 2.0).b_simple)  # nor a negative tr(Sigma)
