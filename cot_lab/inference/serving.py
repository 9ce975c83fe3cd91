"""Serving speed, measured: prefill and decode tokens/s with transformers' KV cache, against the bandwidth ceiling.

    report = cl.measure_serving(model, batch_sizes=(1, 8), prompt_tokens=64, new_tokens=64)
    report.to_frame()        # one row per batch size: prefill / decode tokens/s, ms per token, fraction of ceiling

A request is served in two phases (Pope et al. 2022, "Efficiently Scaling Transformer Inference", arXiv
2211.05102, Sec. 2): the *prefill* runs the prompt through the model in one forward pass, filling the KV cache;
the *decode* then emits one token per sequence per step, each step a forward pass over a single position that
attends to the cache. Prefill is a big matmul (compute-bound); a decode step reads every weight for a handful
of tokens (memory-bound at small batch), see `bandwidth.py`.

Timing: the decode is a plain loop of one-token forward passes over a transformers cache (greedy, argmax),
not `model.generate`: it times exactly `new_tokens` steps apart from the prefill, and it is the cheaper of the
two per token (generate adds logits processing and stopping checks every step: 10-30% more time per step for
15K-190K-parameter models on the kit's 2-core CPU, as benchmarks/serving_speed.py measures). Each phase is
the median of `repeats` rounds after a warm-up round, timed side by side (`cot_lab.core.timing`); every decode
round rewinds the cache to the prompt, so all rounds decode the same positions.

On a CPU a compiled static-cache step is not worth it by default: compiling a 2-layer model's step took ~40 s
on the kit's 2-core CPU, far more than a notebook's whole measurement.
"""
from __future__ import annotations

import inspect
import statistics
from dataclasses import asdict, dataclass, fields

import torch

from cot_lab.core import validate
from cot_lab.core.accounting import flops_breakdown
from cot_lab.core.config import config_of
from cot_lab.core.device import device_name, resolve_device
from cot_lab.core.timing import interleaved_medians
from cot_lab.inference.bandwidth import (cache_bytes_per_token, decode_ceiling_tokens_per_s, kv_bytes_per_token,
                                         measure_memory_bandwidth, weight_bytes_per_step)

CACHES = ("auto", "dynamic", "static")
PROMPT_SEED = 0  # prompts are random token ids from a private generator: speed does not depend on which tokens


# -----------------------------------------------------------------------------
# the KV-cache path: prefill, then one-token decode steps

def _cache_kw(model) -> str:
    # transformers 5.x renames forward's `past_key_values` to `cache` (the old name warns from 5.2x on)
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def new_cache(model, kind: str, max_tokens: int):
    """An empty transformers KV cache for `model`: "dynamic" (grows by concatenation) or "static" (preallocated
    for `max_tokens` positions, updated in place, which is what lets torch.compile / CUDA graphs replay a step)."""
    from transformers import DynamicCache, StaticCache

    if kind == "static":
        return StaticCache(config=model.config, max_cache_len=max_tokens)
    return DynamicCache(config=model.config)


def rewind(cache, tokens: int) -> None:
    """Drop cached positions beyond the first `tokens` (views for a dynamic cache, a counter for a static one)."""
    extra = int(cache.get_seq_length()) - tokens
    if extra > 0:
        cache.crop(-extra)


def prefill(model, input_ids: torch.Tensor, cache) -> torch.Tensor:
    """Run the prompt `input_ids` [b, t] through `model` into `cache`; the greedy next token [b, 1]."""
    # logits_to_keep=1: a server needs only the last position's logits, not a [b, t, vocab] tensor
    out = model(input_ids=input_ids, use_cache=True, logits_to_keep=1, **{_cache_kw(model): cache})
    return out.logits[:, -1:].argmax(-1)  # [b, 1]


def decode(model, token: torch.Tensor, cache, steps: int, step_fn=None) -> torch.Tensor:
    """`steps` greedy decode steps from `cache`, starting by feeding `token` [b, 1]; the emitted tokens [b, steps].

    Each step feeds the last token (one position per sequence), appends its key/value to the cache and takes
    the argmax of the logits. `step_fn` (a compiled `model.forward`, say) replaces `model` for the steps.
    """
    forward, kw = step_fn or model, _cache_kw(model)
    emitted = []
    for _ in range(steps):
        logits = forward(input_ids=token, use_cache=True, **{kw: cache}).logits  # [b, 1, vocab]
        token = logits[:, -1:].argmax(-1)  # [b, 1]
        emitted.append(token)
    return torch.cat(emitted, dim=1)  # [b, steps]


def generate_greedy(model, input_ids: torch.Tensor, new_tokens: int, *, cache: str = "dynamic") -> torch.Tensor:
    """Greedy continuation of `input_ids` [b, t] by `new_tokens` tokens through the KV cache: [b, t + new_tokens] ids.

    The prefill emits the first token, `new_tokens - 1` decode steps the rest (what `model.generate` does greedily).
    """
    new_tokens = validate.integer("new_tokens", new_tokens, hint="tokens to generate, e.g. 16")
    validate.one_of("cache", cache, ("dynamic", "static"))
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            kv = new_cache(model, cache, input_ids.shape[1] + new_tokens)
            first = prefill(model, input_ids, kv)  # [b, 1]
            rest = decode(model, first, kv, new_tokens - 1) if new_tokens > 1 else first[:, :0]
        return torch.cat([input_ids, first, rest], dim=1)  # [b, t + new_tokens]
    finally:
        model.train(was_training)


# -----------------------------------------------------------------------------
# the report

@dataclass(frozen=True)
class BatchServing:
    """Measured serving speed at one batch size. Times are medians (seconds); speeds count all sequences.

    ms_per_token is the time between two tokens of one sequence (one decode step); decode_tokens_per_s is
    batch * new_tokens / decode_s; ceiling_tokens_per_s is the memory-bandwidth bound (`bandwidth.py`) and
    fraction_of_ceiling the share of it reached; decode_flops_per_s = decode tokens/s * forward FLOPs per token.
    """

    batch_size: int
    prefill_s: float
    decode_s: float
    prefill_tokens_per_s: float
    decode_tokens_per_s: float
    ms_per_token: float
    bytes_per_step: float
    ceiling_tokens_per_s: float
    fraction_of_ceiling: float
    decode_flops_per_s: float
    decoded_shape: tuple[int, int]  # (batch, new_tokens): the tokens the timed decode emitted


@dataclass(frozen=True)
class ServingReport:
    """Serving speed of one model on one device, one `BatchServing` per batch size, and the numbers behind the ceiling.

    Units are in the names. kv_bytes_per_token is the formula (2 n_layer n_kv_head d_head bytes);
    kv_bytes_per_token_measured is read off the real cache after a prefill; mean_context_tokens is the mean number
    of K/V entries a decode step reads per sequence; forward_flops_per_token is Hoffmann et al. 2022 App. F,
    forward only, at that context (about 2N plus attention).
    """

    batches: tuple[BatchServing, ...]
    prompt_tokens: int
    new_tokens: int
    repeats: int
    device: str
    device_name: str
    dtype: str
    cache: str  # "dynamic", "static" or "static+compile": what the decode used
    params: int
    weight_bytes: int
    kv_bytes_per_token: int
    kv_bytes_per_token_measured: float
    mean_context_tokens: float
    bandwidth_bytes_per_s: float
    forward_flops_per_token: float

    def batch(self, batch_size: int) -> BatchServing:
        """The measurement at `batch_size`."""
        for row in self.batches:
            if row.batch_size == batch_size:
                return row
        measured = [row.batch_size for row in self.batches]
        raise ValueError(f"batch_size={batch_size!r} was not measured; measured: {measured}")

    def to_frame(self):
        """A pandas DataFrame, one row per batch size (index), with the model-wide numbers as columns too."""
        import pandas as pd

        shared = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "batches"}
        return pd.DataFrame([{**asdict(row), **shared} for row in self.batches]).set_index("batch_size")


# -----------------------------------------------------------------------------
# measuring

def _batch_sizes(value) -> tuple[int, ...]:
    hint = "a non-empty sequence of distinct positive integers, e.g. (1, 8)"
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"batch_sizes={value!r} must be {hint}")
    sizes = tuple(value)
    if not sizes or not all(validate.is_integer(b) and b > 0 for b in sizes) or len(set(sizes)) < len(sizes):
        raise ValueError(f"batch_sizes={value!r} must be {hint}")
    return tuple(int(b) for b in sizes)


def forward_flops(cfg, context_tokens: int) -> float:
    """Forward FLOPs of one token attending to `context_tokens` positions (FLOPs): Hoffmann et al. 2022 App. F,
    forward only (the kit's training count is 3x this), the input-embedding lookup not counted."""
    terms = flops_breakdown(cfg, context_tokens)
    return sum(v for k, v in terms.items() if k != "embedding (paper convention)")


def _step_fn(model, cache_kind: str, dev: torch.device):
    # A static cache keeps every tensor's shape and address fixed from step to step, so on CUDA the decode step
    # can be compiled and replayed as a CUDA graph, removing the per-kernel launch cost that dominates
    # small-batch decoding. The compiled call is transformers' own (`get_compiled_call`: torch.compile with
    # mode="reduce-overhead", what `generate` uses with a static cache on CUDA); the prefill stays eager, as there.
    # Elsewhere there are no CUDA graphs to gain: the step stays eager.
    if cache_kind == "static" and dev.type == "cuda":
        return model.get_compiled_call(None), "static+compile"
    return None, cache_kind


def measure_serving(model, *, batch_sizes=(1, 8), prompt_tokens: int = 64, new_tokens: int = 64, repeats: int = 3,
                    device=None, cache: str = "auto", bandwidth_bytes_per_s: float | None = None) -> ServingReport:
    """Measured prefill and decode speed of `model` (tokens/s) at each batch size, with KV-cache and bandwidth figures.

    For each batch size: a random prompt of `prompt_tokens` tokens per sequence (seeded), one prefill forward
    (timed), then `new_tokens` greedy decode steps from the cache (timed); medians over `repeats` rounds after a
    warm-up round. cache="auto" uses a static cache with a compiled decode step on CUDA and a dynamic cache
    elsewhere; "dynamic" / "static" force one. `device` None measures where the model is; another device moves it
    there for the measurement and back afterwards. `bandwidth_bytes_per_s` None measures it
    (`measure_memory_bandwidth`). The model's train/eval mode and device are restored, even on an interrupt.
    """
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise ValueError(f"model={type(model).__name__} must be a transformers model, e.g. cl.build_model(cfg)")
    sizes = _batch_sizes(batch_sizes)
    prompt_tokens = validate.integer("prompt_tokens", prompt_tokens, hint="prompt length in tokens, e.g. 64")
    new_tokens = validate.integer("new_tokens", new_tokens, hint="tokens to decode per sequence, e.g. 64")
    repeats = validate.integer("repeats", repeats, hint="timed rounds per measurement, e.g. 3")
    validate.one_of("cache", cache, CACHES)
    context = int(model.config.max_position_embeddings)
    if prompt_tokens + new_tokens > context:
        raise ValueError(f"prompt_tokens={prompt_tokens} + new_tokens={new_tokens} = {prompt_tokens + new_tokens} is "
                         f"more than the model's context of {context} positions (max_position_embeddings); use "
                         f"prompt_tokens + new_tokens <= {context}, e.g. prompt_tokens={context // 2}, "
                         f"new_tokens={context // 2}")
    if bandwidth_bytes_per_s is not None:
        bandwidth_bytes_per_s = validate.number("bandwidth_bytes_per_s", bandwidth_bytes_per_s,
                                                hint="bytes/s, or None to measure it")
    home = next(model.parameters()).device
    dev = home if device is None else resolve_device(device)
    kind = cache if cache != "auto" else ("static" if dev.type == "cuda" else "dynamic")
    was_training = model.training
    try:
        model.to(dev).eval()
        bandwidth = bandwidth_bytes_per_s or measure_memory_bandwidth(device=dev)
        step_fn, used = _step_fn(model, kind, dev)
        with torch.inference_mode():
            kv_measured = _measured_kv_bytes(model, prompt_tokens, dev)
            rows = [_measure_batch(model, b, prompt_tokens, new_tokens, repeats, dev, kind, step_fn) for b in sizes]
    finally:
        model.to(home).train(was_training)

    cfg = config_of(model)
    # step i (0-based) reads prompt_tokens + i cached entries and writes one: mean prompt + (new_tokens + 1) / 2
    mean_context = prompt_tokens + (new_tokens + 1) / 2
    # attention FLOPs are linear in the context, so the mean over the steps' contexts is the count at the mean
    flops = statistics.fmean(forward_flops(cfg, prompt_tokens + i + 1) for i in range(new_tokens))
    weights, kv = weight_bytes_per_step(model), kv_bytes_per_token(model)
    batches = []
    for b, prefill_s, decode_s, shape in rows:
        ceiling = decode_ceiling_tokens_per_s(b, bandwidth, weights, kv, mean_context)
        speed = b * new_tokens / decode_s
        batches.append(BatchServing(
            batch_size=b, prefill_s=prefill_s, decode_s=decode_s, prefill_tokens_per_s=b * prompt_tokens / prefill_s,
            decode_tokens_per_s=speed, ms_per_token=1e3 * decode_s / new_tokens,
            bytes_per_step=weights + b * kv * mean_context, ceiling_tokens_per_s=ceiling,
            fraction_of_ceiling=speed / ceiling, decode_flops_per_s=speed * flops, decoded_shape=shape))
    return ServingReport(
        batches=tuple(batches), prompt_tokens=prompt_tokens, new_tokens=new_tokens, repeats=repeats, device=str(dev),
        device_name=device_name(dev), dtype=str(next(model.parameters()).dtype).removeprefix("torch."), cache=used,
        params=sum(p.numel() for p in model.parameters()), weight_bytes=weights, kv_bytes_per_token=kv,
        kv_bytes_per_token_measured=kv_measured, mean_context_tokens=mean_context, bandwidth_bytes_per_s=bandwidth,
        forward_flops_per_token=flops)


def _prompt(model, batch_size: int, tokens: int, dev: torch.device) -> torch.Tensor:
    # a private generator leaves the caller's RNG alone; ids in [0, vocab)
    gen = torch.Generator().manual_seed(PROMPT_SEED)
    return torch.randint(0, model.config.vocab_size, (batch_size, tokens), generator=gen).to(dev)  # [b, t]


def _measured_kv_bytes(model, prompt_tokens: int, dev: torch.device) -> float:
    """KV bytes per token read off a dynamic cache's tensors after a 2-sequence prefill (bytes)."""
    kv = new_cache(model, "dynamic", prompt_tokens)
    prefill(model, _prompt(model, 2, prompt_tokens, dev), kv)
    return cache_bytes_per_token(kv)


def _measure_batch(model, batch_size: int, prompt_tokens: int, new_tokens: int, repeats: int, dev: torch.device,
                   kind: str, step_fn) -> tuple[int, float, float, tuple[int, int]]:
    """(batch, prefill seconds, decode seconds, decoded shape) at one batch size: medians of side-by-side rounds."""
    ids = _prompt(model, batch_size, prompt_tokens, dev)  # [b, prompt_tokens]
    # one cache per batch size, refilled every round: a static cache keeps its addresses, so a compiled step
    # replays instead of recompiling
    kv = new_cache(model, kind, prompt_tokens + new_tokens)
    state = {}

    def run_prefill():
        rewind(kv, 0)
        state["first"] = prefill(model, ids, kv)  # [b, 1]

    def run_decode():
        rewind(kv, prompt_tokens)  # every round decodes the same positions
        state["decoded"] = decode(model, state["first"], kv, new_tokens, step_fn)  # [b, new_tokens]

    # compiled CUDA graphs record on the first calls and replay from the third: warm up past that
    warmup = 3 if step_fn is not None else 1
    times = interleaved_medians({"prefill": run_prefill, "decode": run_decode}, repeats=repeats, warmup=warmup,
                                device=dev)
    return batch_size, times["prefill"], times["decode"], tuple(state["decoded"].shape)
