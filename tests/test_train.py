"""The trainer on real tiny models: golden losses, determinism, budgets, precision, failure modes."""
import math

import pytest
import torch

import cot_lab as cl
import cot_lab.core.training as train_module  # noqa: F401  (the module, for monkeypatching its step)

TINY = dict(d_model=32, n_layer=2, n_head=2, seq_len=32)
# Golden value: validation loss (nats/token) of the seeded tiny run below on the synthetic corpus,
# fp32 on CPU. Any change to the model, data stream or recipe moves it.
GOLDEN_VAL_LOSS = 4.5599  # since the recipe pilot: beta2 0.99, its width rule (5.2e-3 at d_model 32), no decay on embeddings
GOLDEN_TOLERANCE = 0.01  # different CPUs' fp32 kernels sum in different orders


def _train_module():
    import importlib

    return importlib.import_module("cot_lab.core.training")


def tiny_cfg(corpus, **changes):
    return cl.ModelConfig(**{**TINY, "vocab_size": corpus.vocab_size, **changes})


def tiny_run(corpus, **kwargs):
    kwargs = {"tokens": 40_000, "seed": 0, "batch_size": 8, "precision": "fp32", "progress": False,
              "eval_sequences": 32, **kwargs}
    return cl.train(tiny_cfg(corpus), corpus, **kwargs)


@pytest.fixture(scope="module")
def golden_run(synthetic):
    return tiny_run(synthetic)


def test_golden_validation_loss(golden_run, synthetic):
    run = golden_run
    assert run.status == "ok"
    assert run.steps == 40_000 // (8 * 32) == 156
    assert run.tokens == 156 * 8 * 32
    assert run.flops == pytest.approx(run.tokens * cl.flops_per_token(run.config))
    assert run.final_val_loss == pytest.approx(GOLDEN_VAL_LOSS, abs=GOLDEN_TOLERANCE)
    # it learned something, and it did not beat the floor of the language
    assert run.final_val_loss < math.log(synthetic.vocab_size) - 1.0
    assert run.final_val_loss > synthetic.entropy_for(32)[0]
    assert run.val_curve[-1][0] == run.steps
    assert len(run.train_curve) == run.steps
    assert run.train_curve[-1][2] < run.train_curve[0][2] - 1.0


def test_same_seed_same_loss_on_cpu(golden_run, synthetic):
    again = tiny_run(synthetic)
    assert again.final_val_loss == golden_run.final_val_loss
    assert [c[2] for c in again.train_curve] == [c[2] for c in golden_run.train_curve]
    other = tiny_run(synthetic, seed=1)
    assert other.final_val_loss != golden_run.final_val_loss


def test_bf16_autocast_stays_close_to_fp32(synthetic):
    if cl.autocast_dtype("cpu") != torch.bfloat16:
        pytest.skip("this CPU has no native bf16 (AVX-512 bf16 / AMX)")
    cfg = cl.ModelConfig(d_model=64, n_layer=2, n_head=4, seq_len=64, vocab_size=synthetic.vocab_size)
    common = dict(tokens=300_000, batch_size=16, progress=False, eval_sequences=64)
    fp32 = cl.train(cfg, synthetic, precision="fp32", **common)
    bf16 = cl.train(cfg, synthetic, precision="auto", **common)  # auto picks bf16 on this CPU
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    # Stated tolerance: 2% of the loss. bf16 keeps 8 mantissa bits in matmuls while weights, gradients
    # and AdamW state stay fp32; measured here 0.2% apart after 300K tokens. (Over the first ~40K
    # tokens of a high-LR run the gap is larger, up to 8%: early training amplifies rounding.)
    assert bf16.final_val_loss == pytest.approx(fp32.final_val_loss, rel=0.02)
    assert bf16.final_val_loss != fp32.final_val_loss


def test_flops_budget_sets_the_steps(synthetic):
    cfg = tiny_cfg(synthetic)
    per_step = cl.flops_per_token(cfg) * 8 * 32
    run = cl.train(cfg, synthetic, flops=per_step * 10.5, batch_size=8, progress=False, eval_sequences=8)
    assert run.steps == 10
    assert run.flops <= per_step * 10.5
    assert run.budget == {"kind": "flops", "value": per_step * 10.5}


def test_seconds_budget_stops_on_time(synthetic):
    run = cl.train(tiny_cfg(synthetic), synthetic, seconds=1.0, batch_size=8, progress=False, eval_sequences=8)
    assert run.status == "ok"
    assert run.train_s >= 1.0
    assert run.steps >= 1
    assert math.isfinite(run.final_val_loss)


def test_callbacks_see_every_step_and_eval(synthetic):
    seen = {"steps": [], "evals": [], "end": None}

    class Recorder(cl.Callback):
        def on_step(self, state):
            seen["steps"].append((state.step, state.tokens, state.lr))

        def on_eval(self, state, val_loss):
            seen["evals"].append(val_loss)

        def on_end(self, run):
            seen["end"] = run

    run = tiny_run(synthetic, tokens=8 * 32 * 20, callbacks=[Recorder()])
    assert [s[0] for s in seen["steps"]] == list(range(1, 21))
    assert seen["steps"][-1][1] == run.tokens
    lrs = [s[2] for s in seen["steps"]]
    assert max(lrs) == pytest.approx(cl.default_lr(run.config), rel=0.05)
    assert lrs[-1] == pytest.approx(0.1 * cl.default_lr(run.config), rel=0.1)  # cosine decays to 10%
    assert seen["evals"][-1] == run.final_val_loss
    assert seen["end"] is run


def test_interrupt_returns_a_run_marked_interrupted(synthetic, tmp_path):
    class StopButton(cl.Callback):
        def on_step(self, state):
            if state.step == 5:
                raise KeyboardInterrupt

    store = cl.RunStore(tmp_path / "store")
    run = tiny_run(synthetic, callbacks=[StopButton()], store=store)
    assert run.status == "interrupted"
    assert run.steps == 5
    assert math.isnan(run.final_val_loss)
    stored = store.get(run.run_id)
    assert stored.status == "interrupted" and stored.steps == 5
    # the next request for the same run trains it again instead of returning the partial one
    again = tiny_run(synthetic, tokens=40_000, store=store)
    assert again.status == "ok" and not again.from_store
    assert store.get(run.run_id).status == "ok"


def test_nan_loss_marks_run_diverged(synthetic, monkeypatch):
    module = _train_module()
    real_step = module._train_step
    calls = {"n": 0}

    def step_that_blows_up(*args, **kwargs):
        calls["n"] += 1
        return [float("nan")] if calls["n"] == 3 else real_step(*args, **kwargs)

    monkeypatch.setattr(module, "_train_step", step_that_blows_up)
    run = tiny_run(synthetic)
    assert run.status == "diverged"
    assert run.steps == 3
    assert math.isnan(run.final_val_loss)


def test_out_of_memory_halves_the_micro_batch(synthetic, monkeypatch):
    module = _train_module()
    real_step = module._train_step

    def step_with_small_memory(loss_fn, members, scaler, batch, micro, *rest):
        if micro > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(loss_fn, members, scaler, batch, micro, *rest)

    reference = tiny_run(synthetic, tokens=8 * 32 * 10, micro_batch_size=2)
    monkeypatch.setattr(module, "_train_step", step_with_small_memory)
    run = tiny_run(synthetic, tokens=8 * 32 * 10)
    assert run.hparams["micro_batch_size"] == 2
    assert run.status == "ok"
    assert run.final_val_loss == pytest.approx(reference.final_val_loss, abs=1e-4)


@pytest.mark.parametrize("kwargs, words", [
    (dict(), ["exactly one budget"]),
    (dict(flops=1e9, tokens=1e5), ["exactly one budget", "flops", "tokens"]),
    (dict(flops=-1.0), ["flops=-1.0", "positive"]),
    (dict(flops=1e3), ["flops=1e+03", "too small for one step", "batch_size"]),
    (dict(tokens=10), ["tokens=10", "too small for one step"]),
    (dict(seconds=0), ["seconds=0"]),
    (dict(tokens=1e5, batch_size=0), ["batch_size=0"]),
    (dict(tokens=1e5, lr=5.0), ["lr=5.0"]),
    (dict(tokens=1e5, precision="int4"), ["precision='int4'"]),
    (dict(tokens=1e5, device="tpu"), ["device"]),
    (dict(tokens=1e5, micro_batch_size=99), ["micro_batch_size=99"]),
])
def test_bad_arguments_raise_value_error(synthetic, kwargs, words):
    with pytest.raises(ValueError) as info:
        cl.train(tiny_cfg(synthetic), synthetic, progress=False, **kwargs)
    for word in words:
        assert word in str(info.value)


def test_vocab_mismatch_and_wrong_types(synthetic):
    with pytest.raises(ValueError, match="vocab_size"):
        cl.train(tiny_cfg(synthetic, vocab_size=16), synthetic, tokens=1e5)
    with pytest.raises(ValueError, match="ModelConfig"):
        cl.train({"d_model": 32}, synthetic, tokens=1e5)
    with pytest.raises(ValueError, match="load_corpus"):
        cl.train(tiny_cfg(synthetic), "synthetic", tokens=1e5)


def test_evaluate_loss_matches_run(golden_run, synthetic):
    model = golden_run.load_model()
    loss = cl.evaluate_loss(model, synthetic, n_sequences=32)
    assert loss == pytest.approx(golden_run.final_val_loss, abs=1e-5)  # eager vs SDPA summation order
    with pytest.raises(ValueError, match="n_sequences=0"):
        cl.evaluate_loss(model, synthetic, n_sequences=0)


@pytest.mark.slow
def test_compiled_training_matches_eager(synthetic):
    common = dict(tokens=8 * 32 * 30, seed=0, batch_size=8, precision="fp32", progress=False, eval_sequences=16)
    eager = cl.train(tiny_cfg(synthetic), synthetic, compile=False, **common)
    compiled = cl.train(tiny_cfg(synthetic), synthetic, compile=True, **common)
    assert (eager.hparams["compiled"], compiled.hparams["compiled"]) == (False, True)
    assert compiled.run_id != eager.run_id  # kernels differ, so results may differ in the last bits
    assert compiled.final_val_loss == pytest.approx(eager.final_val_loss, abs=1e-3)


def test_compile_auto_only_for_large_budgets():
    import cot_lab.core.plan as module
    cpu = torch.device("cpu")
    assert module._use_compile("auto", cpu, 1e12, 1e12) is False
    assert module._use_compile("auto", cpu, 1e14, 1e14) is module._has_cxx_compiler()
    assert module._use_compile("auto", torch.device("mps"), 1e18, 1e18) is False
    assert module._use_compile(True, cpu, 1e9, 1e9) is True
    with pytest.raises(ValueError, match="compile='yes'"):
        cl.train(cl.ModelConfig(), cl.load_corpus("synthetic"), tokens=1e6, compile="yes")
