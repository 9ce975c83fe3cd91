"""Notebook 04's exercise checks: serving FLOPs, the inference-aware model, KV-cache bytes, the break-even point.

Each checker computes its expected value from the objects the notebook passes in (the KV-cache one measures a
real cache), so neither the expected value nor the hint stands in a cell the student reads before answering.
Serving FLOPs follow Sardana et al. 2024 (arXiv 2401.00448): 2N per token served, 6N per token trained.
"""
from __future__ import annotations

import copy

from cot_lab.core import validate
from cot_lab.core.accounting import count_params
from cot_lab.core.config import ModelConfig, build_model
from cot_lab.inference.bandwidth import cache_bytes_per_token
from cot_lab.inference.costs import TOKENS_PER_REQUEST
from cot_lab.inference.lifetime import INFERENCE_FLOPS_PER_PARAM, TRAIN_FLOPS_PER_PARAM, lifetime_optimum
from cot_lab.inference.readout import tokens_pair
from cot_lab.inference.serving import new_cache, prefill
from cot_lab.ui.checks import CheckResult, check_number, is_answered

__all__ = ["CheckResult", "is_answered", "inference_flops_answer", "tokens_per_param_answer", "kv_bytes_answer",
           "break_even_answer"]

KV_PROMPT_TOKENS = 4        # positions prefilled to read the cache's bytes per token off its tensors
KV_MAX_PARAMS = 50_000_000  # a config is built to measure it: beyond this, pass a model or a ServingReport


def _tokens(tokens_per_request) -> float:
    """Tokens per request: a number, or (prompt, output) whose sum counts."""
    if validate.is_number(tokens_per_request):
        return validate.number("tokens_per_request", tokens_per_request, hint="tokens per request, e.g. 285")
    return sum(tokens_pair(tokens_per_request))


def inference_flops_answer(answer, n_params: float, requests: float, tokens_per_request=TOKENS_PER_REQUEST) -> CheckResult:
    """Check the FLOPs (FLOPs) of serving `requests` requests of `tokens_per_request` tokens with an `n_params`
    model, forward passes only (2 N per token, attention left out), within 1%."""
    n = validate.number("n_params", n_params, hint="parameters, e.g. 7e9")
    r = validate.number("requests", requests, hint="requests, e.g. 1e9")
    served = r * _tokens(tokens_per_request)  # every prompt and output token passes through the model once
    return check_number(answer, INFERENCE_FLOPS_PER_PARAM * n * served, rel=0.01, name="my_inference_flops",
                        unit="FLOPs",
                        hint="a forward pass does one multiply and one add per weight for each token, and every token "
                             "of every request goes through it once, prompt and output alike. Training's 6 per "
                             "parameter includes the backward pass, which serving does not run.")


def tokens_per_param_answer(answer, law, *, loss: float, requests: float, tokens_per_request=TOKENS_PER_REQUEST,
                            flops_per_token=None) -> CheckResult:
    """Check the training tokens per parameter of the model with the fewest lifetime FLOPs that reaches `loss`
    nats/token and serves `requests` requests (recomputed with `lifetime_optimum`), within 2%.

    2%: the panel shows it to three or more digits at exactly this request count; 2% allows rounding, not a
    reading at a neighbouring stop of the slider (12% apart).
    """
    served = validate.number("requests", requests, hint="requests, e.g. 1e9") * _tokens(tokens_per_request)
    best = lifetime_optimum(law, loss=loss, inference_tokens=served, flops_per_token=flops_per_token)
    return check_number(answer, best.tokens_per_param, rel=0.02, name="my_tokens_per_param", unit="tokens/param",
                        hint="set the panel to minimise lifetime FLOPs, at this request count and the request's "
                             "tokens, and read the inference-aware column of the law asked about: tokens per "
                             "parameter is its D_train / N, not the Chinchilla-optimal model's.")


def _measured_kv_bytes(model_or_config, dtype) -> float:
    """KV-cache bytes per token per sequence, read off a real transformers cache after a short prefill (bytes)."""
    import torch

    if hasattr(model_or_config, "kv_bytes_per_token_measured"):  # a ServingReport: measured there already
        return float(model_or_config.kv_bytes_per_token_measured)
    if isinstance(model_or_config, ModelConfig):
        total = count_params(model_or_config).total
        if total > KV_MAX_PARAMS:
            raise ValueError(f"model={model_or_config!r:.60} has {total:,} parameters, too many to build here; pass a "
                             f"config under {KV_MAX_PARAMS:,}, a built model, or cl.measure_serving(model)'s report")
        model = build_model(model_or_config, seed=0)
    elif isinstance(model_or_config, torch.nn.Module) and hasattr(model_or_config, "config"):
        # another dtype on a copy: casting the student's model there and back would round its weights
        own = next(model_or_config.parameters()).dtype
        model = model_or_config if dtype in (None, own) else copy.deepcopy(model_or_config)
    else:
        raise ValueError(f"model={type(model_or_config).__name__} must be a cl.ModelConfig, a model built by "
                         "cl.build_model, or a ServingReport from cl.measure_serving")
    was_training = model.training
    try:
        model.eval()
        if dtype is not None:
            model.to(dtype)
        ids = torch.arange(KV_PROMPT_TOKENS).remainder(model.config.vocab_size)[None]  # [1, t]
        with torch.inference_mode():
            cache = new_cache(model, "dynamic", KV_PROMPT_TOKENS)
            prefill(model, ids.to(next(model.parameters()).device), cache)
        return cache_bytes_per_token(cache)
    finally:
        model.train(was_training)


def kv_bytes_answer(answer, model, *, dtype=None) -> CheckResult:
    """Check the KV-cache bytes (bytes) one token of one sequence takes in `model` (a cl.ModelConfig, a built model
    or a ServingReport), in `dtype` (None: the model's own; a config builds in float32), to the byte.

    The expected value is measured: the bytes of a real transformers cache's key and value tensors after a prefill,
    divided by the tokens it holds, not the formula the exercise asks for.
    """
    if dtype is not None and not getattr(dtype, "is_floating_point", False):
        raise ValueError(f"dtype={dtype!r} must be a floating torch dtype, e.g. torch.bfloat16, or None")
    return check_number(answer, _measured_kv_bytes(model, dtype), abs=0.5, name="my_kv_bytes_per_token", unit="bytes",
                        hint="per layer the cache keeps one key and one value vector for every KV head, each of "
                             "head_dim numbers (d_model / n_head unless set); with grouped-query attention only the "
                             "n_kv_head shared heads are cached. Multiply by the bytes of one number: 4 in float32, "
                             "2 in bfloat16.")


def break_even_answer(answer, n_params: float, train_tokens: float, tokens_per_request=TOKENS_PER_REQUEST) -> CheckResult:
    """Check the number of requests (requests) after which serving an `n_params` model trained on `train_tokens`
    tokens has cost as many FLOPs as training it (6 N per training token, 2 N per served token), within 2%."""
    n = validate.number("n_params", n_params, hint="parameters, e.g. 7e9")
    d = validate.number("train_tokens", train_tokens, hint="training tokens, e.g. 1.4e11")
    training = TRAIN_FLOPS_PER_PARAM * n * d
    per_request = INFERENCE_FLOPS_PER_PARAM * n * _tokens(tokens_per_request)
    return check_number(answer, training / per_request, rel=0.02, name="my_break_even_requests", unit="requests",
                        hint="write both sides: training FLOPs for D tokens, and serving FLOPs for R requests of t "
                             "tokens each; set them equal and solve for R. Does the model size matter?")
