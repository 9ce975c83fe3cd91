"""Measurements that do not flatter: loss, bytes on disk, and latency measured on this device.

- Size: the bytes of a real safetensors file of the model (written to a temporary file and stat'ed),
  and what two sparse formats would take: CSR (values + column indices + row pointers) and a bitmask
  (one bit per weight + the nonzero values). Unstructured pruning leaves the dense file as big as before.
- Latency: the median of `repeats` timed calls after `warmup` untimed ones (first calls pay for
  allocations and kernel selection), for scoring a batch (one forward) and for generating tokens
  with `model.generate` (greedy, KV cache on). Seconds, wall clock, on the model's device.
- Speed ratios are measured side by side, never against a baseline timed earlier: `latencies` times every
  model of a comparison in interleaved rounds (A B A B ...), so a machine that gets busier mid-way slows all
  of them alike; a ratio is the candidate's median over the baseline's median from the same rounds.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import asdict, dataclass

import torch
from torch import nn

from cot_lab.core import validate
from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES, evaluate_loss
from cot_lab.core.timing import interleaved_medians
from cot_lab.data.base import Corpus

CSR_ROW_POINTER_BYTES = 4  # int32 row offsets


def state_tensors(model) -> dict[str, torch.Tensor]:
    """Every tensor a file of `model` must hold, as plain contiguous tensors, each shared tensor once.

    torchao's quantized weights are tensor subclasses; they are stored as their inner tensors
    (int8 data, scales), named `<weight>.<part>`, which is what their bytes really are.
    """
    out, seen = {}, set()
    for name, var in model.state_dict(keep_vars=True).items():
        # keyed on the model's own parameter object (kept alive by the model), never on a temporary's id
        t = var.detach()
        plain = type(t) is torch.Tensor
        key = (t.data_ptr(), t.shape, t.dtype) if plain else id(var)
        if key in seen:  # tied embeddings: one table, two names
            continue
        seen.add(key)
        if plain:
            out[name] = t.contiguous()
        else:
            inner, _ = t.__tensor_flatten__()
            for part in inner:
                value = getattr(t, part)
                if isinstance(value, torch.Tensor):
                    out[f"{name}.{part}"] = value.detach().contiguous()
    return out


def disk_bytes(model) -> int:
    """Size (bytes) of `model` written as one safetensors file, measured on disk."""
    from safetensors.torch import save_file

    fd, path = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        save_file({k: v.cpu() for k, v in state_tensors(model).items()}, path)
        return os.path.getsize(path)
    finally:
        os.remove(path)


def sparse_bytes(model) -> dict[str, int]:
    """Estimated bytes in two sparse formats, {"csr": ..., "bitmask": ...}; every tensor takes the smaller of that
    format and dense storage (a real file would not store a dense tensor sparsely). Headers are not counted.

    CSR: nnz * (value + column index) + (rows + 1) * 4, with 2-byte indices when a row has <= 65,536 columns.
    Bitmask: ceil(numel / 8) + nnz * value.
    """
    csr = bitmask = 0
    for t in state_tensors(model).values():
        dense = t.numel() * t.element_size()
        nnz = int(torch.count_nonzero(t))
        if t.dim() == 2:
            index = 2 if t.shape[1] <= 65536 else 4
            csr += min(dense, nnz * (t.element_size() + index) + (t.shape[0] + 1) * CSR_ROW_POINTER_BYTES)
        else:
            csr += dense
        bitmask += min(dense, math.ceil(t.numel() / 8) + nnz * t.element_size())
    return {"csr": csr, "bitmask": bitmask}


def n_params(model) -> int:
    """Logical parameters (weights the model uses, zeros included, tied ones once; int8 buffers count too)."""
    from cot_lab.compress.quantization import Int8WeightOnlyLinear

    extra = sum(m.qweight.numel() for m in model.modules() if isinstance(m, Int8WeightOnlyLinear))
    return sum(p.numel() for p in model.parameters()) + extra


def _tokens(model, batch_size: int, length: int) -> torch.Tensor:
    # Latency does not depend on which tokens; a private generator leaves the caller's RNG alone.
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch_size, length), generator=gen)
    return ids.to(next(model.parameters()).device)


def _score_call(model, batch_size: int, seq_len: int | None):
    """A callable that scores one batch of `batch_size` x `seq_len` tokens (default: the context) with `model`."""
    batch_size = validate.integer("batch_size", batch_size, hint="sequences per batch, e.g. 8")
    seq_len = int(model.config.max_position_embeddings) if seq_len is None else seq_len
    ids = _tokens(model, batch_size, seq_len)
    model.eval()

    def call():
        with torch.inference_mode():
            model(input_ids=ids)

    return call


def _generate_call(model, n_tokens: int, prompt_len: int, batch_size: int):
    """A callable that generates `n_tokens` tokens greedily after a `prompt_len`-token prompt, KV cache on."""
    n_tokens = validate.integer("n_tokens", n_tokens, hint="tokens to generate, e.g. 32")
    prompt_len = validate.integer("prompt_len", prompt_len, hint="prompt tokens, e.g. 16")
    batch_size = validate.integer("batch_size", batch_size, hint="prompts at once, e.g. 1")
    ids = _tokens(model, batch_size, prompt_len)
    model.eval()

    def call():
        with torch.inference_mode():
            generate(model, ids, n_tokens)

    return call


def _device(model) -> torch.device:
    return next(model.parameters()).device


def score_latency(model, *, batch_size: int = 8, seq_len: int | None = None, repeats: int = 10,
                  warmup: int = 2) -> float:
    """Median seconds for one forward pass over a batch of `batch_size` x `seq_len` tokens (default: the context)."""
    call = _score_call(model, batch_size, seq_len)
    return interleaved_medians({"model": call}, repeats=repeats, warmup=warmup, device=_device(model))["model"]


def generate_latency(model, *, n_tokens: int = 32, prompt_len: int = 16, batch_size: int = 1, repeats: int = 5,
                     warmup: int = 1) -> float:
    """Median seconds to generate `n_tokens` tokens greedily after a `prompt_len`-token prompt, KV cache on."""
    call = _generate_call(model, n_tokens, prompt_len, batch_size)
    return interleaved_medians({"model": call}, repeats=repeats, warmup=warmup, device=_device(model))["model"]


def latencies(models: dict, *, batch_size: int = 8, n_tokens: int = 32, repeats: int = 5,
              warmup: int = 2) -> dict[str, dict[str, float]]:
    """Latencies of every model of {label: model}, timed side by side: {label: {"score_s": ..., "generate_s": ...}}.

    Scoring (one forward of batch_size x context tokens) is timed in interleaved rounds over all the models,
    then generation (n_tokens greedy tokens after a 16-token prompt); medians in seconds. Ratios between
    these numbers are fair: every model met the same machine at the same moments.
    """
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {label: model}, e.g. {'dense': model, 'pruned': pruned}")
    device = _device(next(iter(models.values())))
    score = interleaved_medians({k: _score_call(m, batch_size, None) for k, m in models.items()},
                                repeats=repeats, warmup=warmup, device=device)
    gen = interleaved_medians({k: _generate_call(m, n_tokens, 16, 1) for k, m in models.items()},
                              repeats=repeats, warmup=max(1, warmup // 2), device=device)
    return {k: {"score_s": score[k], "generate_s": gen[k]} for k in models}


def generate(model, input_ids: torch.Tensor, n_tokens: int) -> torch.Tensor:
    """Greedy continuation of `input_ids` [b, t] by exactly `n_tokens` tokens: [b, t + n_tokens] token ids."""
    from transformers import GenerationConfig

    # These models have no end-of-text token: min = max new tokens makes every call do the same work.
    config = GenerationConfig(max_new_tokens=n_tokens, min_new_tokens=n_tokens, do_sample=False, use_cache=True,
                              pad_token_id=0, bos_token_id=None, eos_token_id=None)
    return model.generate(input_ids, generation_config=config)


@dataclass
class Measurement:
    """One model measured: loss (nats/token), sizes (parameters, bytes), latencies (seconds, medians)."""

    val_loss: float
    params: int
    disk_bytes: int
    csr_bytes: int
    bitmask_bytes: int
    score_s: float
    generate_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def measure(model, corpus: Corpus, *, n_sequences: int = DEFAULT_EVAL_SEQUENCES, batch_size: int = 8,
            n_tokens: int = 32, repeats: int = 5, warmup: int = 2, latency: bool = True) -> Measurement:
    """Validation loss on `corpus`, size on disk (dense safetensors and sparse estimates) and latencies of `model`.

    latency=False skips the timings (they read NaN) for a quick quality/size sweep.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} must be a model (torch nn.Module), e.g. run.load_model()")
    loss = evaluate_loss(model, corpus, n_sequences=n_sequences)
    sparse = sparse_bytes(model)
    timed = latencies({"model": model}, batch_size=batch_size, n_tokens=n_tokens, repeats=repeats,
                      warmup=warmup)["model"] if latency else {"score_s": float("nan"), "generate_s": float("nan")}
    return Measurement(loss, n_params(model), disk_bytes(model), sparse["csr"], sparse["bitmask"], **timed)


def compare(models: dict, corpus: Corpus, **measure_kw):
    """Measure every model of {label: model}; a DataFrame, one row each, with ratios to the first (the baseline).

    Ratios: size_ratio = disk_bytes / baseline's, score_ratio and generate_ratio = latency / baseline's
    (below 1 = faster), loss_delta = val_loss - baseline's (nats/token). The latencies of all the models are
    timed side by side in the same rounds (`latencies`), so every ratio compares measurements of one moment.
    """
    import pandas as pd

    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {label: model}; the first entry is the baseline")
    latency = measure_kw.pop("latency", True)
    timing = {k: measure_kw.pop(k) for k in ("batch_size", "n_tokens", "repeats", "warmup") if k in measure_kw}
    rows = {label: measure(m, corpus, latency=False, **measure_kw).to_dict() for label, m in models.items()}
    if latency:
        for label, timed in latencies(models, **timing).items():
            rows[label].update(timed)
    frame = pd.DataFrame([{"model": label, **row} for label, row in rows.items()])
    base = frame.iloc[0]
    frame["loss_delta"] = frame["val_loss"] - base["val_loss"]
    frame["size_ratio"] = frame["disk_bytes"] / base["disk_bytes"]
    frame["score_ratio"] = frame["score_s"] / base["score_s"]
    frame["generate_ratio"] = frame["generate_s"] / base["generate_s"]
    return frame.set_index("model")
