"""The memory side of decoding: KV-cache bytes, weight bytes, this machine's memory bandwidth, and the ceiling they set.

Generating one token per sequence is a forward pass over a single position, so each decode step does about
2N FLOPs per sequence but must stream every weight from memory, plus each sequence's cached keys and values.
At small batch sizes the bytes, not the FLOPs, bound the speed (Pope et al. 2022, "Efficiently Scaling
Transformer Inference", arXiv 2211.05102, Sec. 2-3): per step the weights are read once for the whole batch
and the KV cache once per sequence, so

    decode tokens/s  <=  batch * bandwidth / (weight bytes + batch * KV bytes per token * context tokens).

Batching amortises the weights over more tokens, which is why throughput grows with the batch until the
matmuls become compute-bound or the KV reads dominate.
"""
from __future__ import annotations

import torch

from cot_lab.core import validate
from cot_lab.core.accounting import active_params, count_params
from cot_lab.core.config import ModelConfig, config_of
from cot_lab.core.device import resolve_device
from cot_lab.core.timing import interleaved_medians

MIB = 2**20
# Much larger than any last-level cache this kit meets (32 MiB L3 on the kit's 2-core EPYC, 50 MiB L2 on an
# H100 / H200), so the copy streams from DRAM / HBM rather than from cache.
BANDWIDTH_BYTES = 256 * MIB
MIN_BANDWIDTH_BYTES = MIB  # below this a copy times launch overhead and caches, not memory


# -----------------------------------------------------------------------------
# bytes the model reads per decode step

def kv_bytes_per_token(cfg, *, dtype: torch.dtype | None = None) -> int:
    """KV-cache bytes one token of one sequence takes (bytes): 2 * n_layer * n_kv_head * head_dim * bytes per element.

    One key and one value vector per layer per KV head (Pope et al. 2022, Sec. 3.1); grouped-query attention
    caches only the n_kv_head shared heads. `cfg`: a ModelConfig or a built model; `dtype` None means the
    model's parameter dtype (a config: float32, what `build_model` makes). Llama-3-8B (32 layers, 8 KV heads of
    128) in bf16: 2 * 32 * 8 * 128 * 2 = 131,072 bytes = 128 KiB per token.
    """
    if isinstance(cfg, ModelConfig):
        shape, model_dtype = cfg, torch.float32
    elif isinstance(cfg, torch.nn.Module):
        shape, model_dtype = config_of(cfg), next(cfg.parameters()).dtype
    else:
        raise ValueError(f"cfg={type(cfg).__name__} must be a cl.ModelConfig or a model built by cl.build_model")
    dtype = model_dtype if dtype is None else dtype
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype={dtype!r} must be a floating torch dtype, e.g. torch.bfloat16 or torch.float32")
    bytes_per_element = torch.empty((), dtype=dtype).element_size()
    return 2 * shape.n_layer * shape.n_kv_head * shape.head_dim * bytes_per_element


def cache_bytes_per_token(cache) -> float:
    """Bytes per token per sequence of a transformers KV cache, read off its tensors (bytes).

    The sum of every layer's key and value tensor bytes, over batch * token slots ([b, n_kv_head, slots, d_head]
    each): the tokens cached for a dynamic cache, the slots allocated for a static one.
    """
    layers = getattr(cache, "layers", None)
    if not layers or any(getattr(layer, "keys", None) is None for layer in layers):
        raise ValueError("cache must be a filled transformers Cache (DynamicCache / StaticCache after a forward pass)")
    keys = layers[0].keys  # [b, n_kv_head, slots, d_head]
    total = sum(layer.keys.nbytes + layer.values.nbytes for layer in layers)
    return total / (keys.shape[0] * keys.shape[-2])


def stored_bytes(tensor: torch.Tensor) -> int:
    """Bytes a tensor keeps in memory (bytes): a quantized tensor subclass (torchao's Int8Tensor) by its inner
    tensors (int8 data, scales), since its own dtype and element size are those of the values it stands for."""
    if hasattr(tensor, "__tensor_flatten__"):
        inner, _ = tensor.__tensor_flatten__()
        return sum(stored_bytes(getattr(tensor, name)) for name in inner)
    return tensor.numel() * tensor.element_size()


def weight_bytes_per_step(model) -> int:
    """Weight bytes one decode step must read at least (bytes): every weight once, tied ones once, quantized
    ones as stored (`stored_bytes`; the kit's weight-only int8 keeps them in buffers, which count too).

    An untied input embedding is left out: a step looks up one row per sequence, not the table (a tied table is
    read whole anyway, as the output head). For a Mixture of Experts only top_k experts per layer are counted,
    the fewest a step can touch (every sequence routed alike), so that the ceiling stays an upper bound.
    """
    total = sum(stored_bytes(p) for p in model.parameters())  # parameters() yields tied ones once
    # persistent buffers hold weights (int8 data and scales); the non-persistent ones (rotary frequencies) do not
    persistent = set(model.state_dict(keep_vars=True))
    total += sum(stored_bytes(b) for name, b in model.named_buffers() if name in persistent)
    embed, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    if embed is not head:
        total -= stored_bytes(embed)
    cfg = config_of(model)
    if cfg.arch == "moe":
        total -= (count_params(cfg).total - active_params(cfg)) * embed.element_size()
    return total


def decode_ceiling_tokens_per_s(batch_size: int, bandwidth_bytes_per_s: float, weight_bytes: float,
                                kv_bytes_per_token: float, context_tokens: float) -> float:
    """Most decode tokens/s (all sequences together) that memory bandwidth allows at this batch size (tokens/s).

    batch * bandwidth / (weight bytes + batch * KV bytes per token * context tokens): each step reads the weights
    once and every sequence's `context_tokens` cached K/V entries once. It leaves out activations and logits, so
    it is an upper bound; an implementation that copies its cache (a dynamic cache concatenates, re-writing it
    every step) moves more bytes and lands further below it.
    """
    bytes_per_step = weight_bytes + batch_size * kv_bytes_per_token * context_tokens
    return batch_size * bandwidth_bytes_per_s / bytes_per_step


# -----------------------------------------------------------------------------
# measured memory bandwidth

def measure_memory_bandwidth(n_bytes: int = BANDWIDTH_BYTES, repeats: int = 5, *, device=None) -> float:
    """This device's memory bandwidth (bytes/s), measured: median time of copying an `n_bytes` buffer into another.

    Each copy counts 2 * n_bytes (one read, one write), the convention of McCalpin's STREAM "Copy" kernel (Memory
    Bandwidth and Machine Balance in Current High Performance Computers, IEEE TCCA Newsletter, 1995). On a CPU a
    store also reads the line it writes (write-allocate) unless the copy uses streaming stores, so the bus may
    carry up to 3 * n_bytes: the figure is what a copy achieves, the same kind of traffic a decode step makes.
    The default buffer (256 MiB) is far larger than the last-level cache; `device` None means the best device.
    """
    n_bytes = validate.integer("n_bytes", n_bytes, low=MIN_BANDWIDTH_BYTES,
                               hint=f"the buffer size in bytes, much larger than the last-level cache, "
                                    f"e.g. {BANDWIDTH_BYTES} (256 MiB)")
    repeats = validate.integer("repeats", repeats, hint="timed copies, e.g. 5")
    dev = resolve_device(device)
    # uint8, so any byte count works; the first (warm-up) copy pays for page faults on fresh memory
    src = torch.ones(n_bytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    seconds = interleaved_medians({"copy": lambda: dst.copy_(src)}, repeats=repeats, warmup=1, device=dev)["copy"]
    return 2 * n_bytes / seconds
