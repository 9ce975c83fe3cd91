"""The CUDA path: stacked forward, batched members and every precision on a real GPU. Skipped without CUDA.

`python benchmarks/gpu_check.py` runs these and the GPU throughput checks as one short script.
"""
import numpy as np
import pytest
import torch

import cot_lab as cl
from cot_lab.core import stacked_llama

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

TINY = dict(d_model=64, n_layer=2, n_head=4, seq_len=64)
COMMON = dict(tokens=8 * 64 * 12, batch_size=8, progress=False, eval_sequences=16, compile=False, device="cuda")


@pytest.fixture(autouse=True)
def exact_matmuls():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32 here
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_stacked_forward_equals_transformers_on_cuda(synthetic):
    cfg = cl.ModelConfig(**TINY, vocab_size=synthetic.vocab_size, n_kv_head=2)
    models = [cl.build_model(cfg, seed=s).cuda() for s in (0, 1)]
    ids = torch.stack([next(synthetic.train_batches(2, cfg.seq_len, s))[:, :-1] for s in (0, 1)]).cuda()
    with torch.no_grad():
        got = stacked_llama.logits(stacked_llama.stack_weights(models), ids, cfg, "sdpa",
                                   **stacked_llama.hf_settings(models[0]))
        for g, model in enumerate(models):
            torch.testing.assert_close(got[g], model(input_ids=ids[g]).logits, atol=1e-4, rtol=1e-4)


def test_group_members_equal_solo_runs_on_cuda(synthetic):
    cfg = cl.ModelConfig(**TINY, vocab_size=synthetic.vocab_size)
    solo = [cl.train(cfg, synthetic, seed=s, precision="fp32", **COMMON) for s in (0, 1)]
    group = cl.train_many(cfg, synthetic, seeds=[0, 1], precision="fp32", **COMMON)
    for alone, member in zip(solo, group):
        assert member.run_id == alone.run_id and member.device == "cuda"
        np.testing.assert_allclose([x[2] for x in member.train_curve], [x[2] for x in alone.train_curve], atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_trains_on_cuda(synthetic, precision):
    cfg = cl.ModelConfig(**TINY, vocab_size=synthetic.vocab_size)
    run = cl.train(cfg, synthetic, precision=precision, **COMMON)
    assert run.status == "ok" and run.precision == precision
    assert run.final_val_loss < run.train_curve[0][2]  # it learned something in 12 steps


def test_compiled_training_on_cuda_matches_eager(synthetic):
    cfg = cl.ModelConfig(**TINY, vocab_size=synthetic.vocab_size)
    common = {**COMMON, "compile": True}
    compiled = cl.train(cfg, synthetic, precision="fp32", **common)
    eager = cl.train(cfg, synthetic, precision="fp32", **COMMON)
    assert compiled.hparams["compiled"] and compiled.final_val_loss == pytest.approx(eager.final_val_loss, abs=1e-3)
