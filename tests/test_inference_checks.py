"""Notebook 04's exercise checkers against answers worked out by hand (or by a brute-force search), never by
the checker's own formula; wrong answers get a hint that does not give the value away."""
import numpy as np
import pytest
import torch

import cot_lab as cl
from cot_lab.core.results import load_results
from cot_lab.inference import checks
from cot_lab.inference.panel import LifetimePanel

# Chinchilla's Approach-3 fit with its exponents unrounded, as in Sardana et al. 2024's code (utils.py).
SARDANA = cl.ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.336, beta=0.283)
# head_dim 48 / 6 = 8; 2 KV heads (grouped-query attention); 3 layers
GQA = cl.ModelConfig(d_model=48, n_layer=3, n_head=6, n_kv_head=2, vocab_size=512, seq_len=64)
GQA_FP32 = 2 * 3 * 2 * 8 * 4  # K and V x layers x KV heads x head_dim x 4 bytes = 384 bytes per token


def no_value(result, value):
    return f"{value:.3g}" not in result.message and f"{value:,.0f}" not in result.message


# ------------------------------------------------------------------ (a) serving FLOPs


def test_inference_flops():
    # 7B parameters, 1e9 requests of 70 + 215 tokens: 2 x 7e9 x 1e9 x 285 = 3.99e21 FLOPs
    assert checks.inference_flops_answer(3.99e21, 7e9, 1e9)
    assert checks.inference_flops_answer(3.99e21 * 1.009, 7e9, 1e9, tokens_per_request=285)
    assert checks.inference_flops_answer(2 * 1e6 * 10 * 100, 1e6, 10, tokens_per_request=(40, 60))
    training_rate = checks.inference_flops_answer(3 * 3.99e21, 7e9, 1e9)  # 6N per token: training's count
    assert not training_rate and "about 3x too large" in training_rate.verdict
    assert "backward pass" in training_rate.hint and no_value(training_rate, 3.99e21)
    outputs_only = checks.inference_flops_answer(2 * 7e9 * 1e9 * 215, 7e9, 1e9)  # prompts forgotten
    assert not outputs_only and "too low" in outputs_only.verdict and "prompt and output" in outputs_only.hint
    assert "Fill in my_inference_flops" in checks.inference_flops_answer(None, 7e9, 1e9).message
    with pytest.raises(ValueError, match="n_params="):
        checks.inference_flops_answer(1.0, 0, 1e9)


# ------------------------------------------------------------------ (b) tokens per parameter of the inference-aware model


def brute_force_tokens_per_param(law, loss, inference_tokens):
    """D/N of the N minimising 6 N D(N) + 2 N T on the iso-loss curve, on a fine grid in log N (no solver)."""
    n_min = (law.A / (loss - law.E)) ** (1 / law.alpha)
    n = n_min * np.exp(np.geomspace(1e-6, 40, 200_001))
    d = (law.B / (loss - law.E - law.A / n ** law.alpha)) ** (1 / law.beta)
    i = np.argmin(6 * n * d + 2 * n * inference_tokens)
    return float(d[i] / n[i])


def test_tokens_per_param_against_a_brute_force_search():
    loss = 1.69 + 406.4 * (1 + 0.336 / 0.283) / 7e9 ** 0.336  # the Chinchilla-optimal 7B model's loss
    truth = brute_force_tokens_per_param(SARDANA, loss, 1e9 * 285)
    assert checks.tokens_per_param_answer(truth, SARDANA, loss=loss, requests=1e9)
    assert checks.tokens_per_param_answer(truth * 1.015, SARDANA, loss=loss, requests=1e9)
    assert not checks.tokens_per_param_answer(truth * 1.05, SARDANA, loss=loss, requests=1e9)
    # the Chinchilla-optimal column read by mistake: its D/N, from the closed form of H22 eq. 4
    d_chinchilla = (410.7 * (1 + 0.283 / 0.336) / (loss - 1.69)) ** (1 / 0.283)
    wrong = checks.tokens_per_param_answer(d_chinchilla / 7e9, SARDANA, loss=loss, requests=1e9)
    assert not wrong and "too low" in wrong.verdict and "not the Chinchilla-optimal" in wrong.hint
    assert no_value(wrong, truth)
    assert "Fill in" in checks.tokens_per_param_answer(None, SARDANA, loss=loss, requests=1e9).message
    with pytest.raises(ValueError, match="loss="):
        checks.tokens_per_param_answer(100.0, SARDANA, loss=1.5, requests=1e9)


def test_tokens_per_param_as_the_panel_shows_it_for_the_kit_law():
    law, fpt = cl.ScalingLaw(**load_results("laptop")["holdout"]["fitted_law"]), cl.ladder_flops_per_token()
    panel = LifetimePanel(law, flops_per_token=fpt, requests=1e6)
    shown = float(f"{panel.readout()['your law']['tokens_per_param']:.3g}")  # three digits, as a student reads it
    loss = panel.readout()["your law"]["loss"]
    assert checks.tokens_per_param_answer(shown, law, loss=loss, requests=1e6, flops_per_token=fpt)
    # read at the wrong request count: a different model
    assert not checks.tokens_per_param_answer(shown, law, loss=loss, requests=1e8, flops_per_token=fpt)


# ------------------------------------------------------------------ (c) KV-cache bytes, measured on a real cache


def test_kv_bytes_measured_from_a_real_cache():
    assert checks.kv_bytes_answer(GQA_FP32, GQA)
    assert checks.kv_bytes_answer(GQA_FP32 // 2, GQA, dtype=torch.bfloat16)
    all_heads = checks.kv_bytes_answer(2 * 3 * 6 * 8 * 4, GQA)  # n_head instead of n_kv_head
    assert not all_heads and "about 3x too large" in all_heads.verdict and "n_kv_head" in all_heads.hint
    keys_only = checks.kv_bytes_answer(GQA_FP32 // 2, GQA)  # the values forgotten
    assert not keys_only and "too low by 190 bytes (50%" in keys_only.verdict
    assert no_value(keys_only, GQA_FP32)
    assert "Fill in my_kv_bytes_per_token" in checks.kv_bytes_answer(None, GQA).message


def test_kv_bytes_from_a_built_model_and_a_serving_report_leave_the_model_alone():
    cfg = cl.ModelConfig(d_model=32, n_layer=2, n_head=2, vocab_size=512, seq_len=64)  # head_dim 16, no GQA
    model = cl.build_model(cfg, seed=0).train()
    before = model.model.layers[0].self_attn.q_proj.weight.clone()
    assert checks.kv_bytes_answer(2 * 2 * 2 * 16 * 2, model, dtype=torch.bfloat16)  # 256 bytes
    assert model.training and next(model.parameters()).dtype == torch.float32
    assert torch.equal(model.model.layers[0].self_attn.q_proj.weight, before)  # no round trip through bf16
    report = cl.measure_serving(model, batch_sizes=(1,), prompt_tokens=4, new_tokens=2, repeats=1, device="cpu",
                                bandwidth_bytes_per_s=1e10)
    assert checks.kv_bytes_answer(2 * 2 * 2 * 16 * 4, report)  # 512 bytes in float32


def test_kv_bytes_refuses_what_it_cannot_measure():
    llama3_8b = cl.ModelConfig(d_model=4096, n_layer=32, n_head=32, n_kv_head=8, d_ff=14336, vocab_size=128256,
                               seq_len=8192)
    with pytest.raises(ValueError, match="too many to build here"):
        checks.kv_bytes_answer(131072, llama3_8b)
    with pytest.raises(ValueError, match="model="):
        checks.kv_bytes_answer(1.0, "llama")
    with pytest.raises(ValueError, match="dtype="):
        checks.kv_bytes_answer(1.0, GQA, dtype="bf16")


# ------------------------------------------------------------------ (d) break-even requests


def test_break_even_requests():
    # 6 x N x 140e9 = 2 x N x R x 285  ->  R = 3 x 140e9 / 285 = 1.4737e9 requests, whatever N
    assert checks.break_even_answer(1.4737e9, 7e9, 140e9)
    assert checks.break_even_answer(1.4737e9, 70e9, 140e9, tokens_per_request=(70, 215))
    assert checks.break_even_answer(3 * 1e12 / 1000, 1e9, 1e12, tokens_per_request=1000)
    no_factor = checks.break_even_answer(140e9 / 285, 7e9, 140e9)  # 6N vs 2N forgotten
    assert not no_factor and "too low by" in no_factor.verdict and "(67% of the expected value)" in no_factor.verdict
    assert "Does the model size matter" in no_factor.hint
    assert no_value(no_factor, 1.4737e9)
    assert "Fill in" in checks.break_even_answer(None, 7e9, 140e9).message
