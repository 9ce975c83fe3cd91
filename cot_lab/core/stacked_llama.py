"""The Llama forward pass for G same-shape models at once, from their weights stacked on a leading axis.

Why: the course's models are tiny (5K-300K parameters at 2-4 sequences a step on a laptop), so a
step's time goes to Python and per-op overhead, not arithmetic. Hugging Face's `LlamaForCausalLM`
spends ~2 ms of Python on a forward of a one-layer model (masks, cache checks, hooks, kwargs), more
than the arithmetic. This module computes the same function (`transformers` 5.x Llama: RMSNorm,
rotary positions, SwiGLU, tied embeddings, grouped-query attention) op for op, in a few dozen tensor
ops, and for G models at once: every weight is [G, ...], every activation [G, ...], every matmul a
batched one. G = 1 is a plain run; G > 1 trains several seeds (or learning rates) of one shape in
one computation. The weights stay the `transformers` models' own parameters (`stack_weights` makes
differentiable [G, ...] views or stacks of them), so optimizers, checkpoints and the store see
ordinary models. `tests/test_stacked_llama.py` checks the logits against `transformers` to 1e-5.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from cot_lab.core.config import ModelConfig

_LAYER = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
          "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def supports(model) -> bool:
    """Whether `model` is one this forward computes exactly: a dense Llama with the settings `build_model` uses."""
    hf = getattr(model, "config", None)
    return (type(model).__name__ == "LlamaForCausalLM" and hf is not None and hf.hidden_act == "silu"
            and not hf.attention_bias and not hf.mlp_bias
            and (getattr(hf, "rope_parameters", None) or {}).get("rope_type", "default") == "default")


def stack_weights(models) -> dict:
    """The weights of `models` (same shape) as [G, ...] tensors that autograd traces back to each model's parameters.

    One model gives views (no copy); several give `torch.stack`s, rebuilt every step so that the
    optimizer can keep updating each model's own parameters.
    """
    join = (lambda ts: ts[0].unsqueeze(0)) if len(models) == 1 else torch.stack
    cores = [m.model for m in models]
    out = {
        "embed": join([c.embed_tokens.weight for c in cores]),   # [G, V, d]
        "norm": join([c.norm.weight for c in cores]),            # [G, d]
        "layers": [],
    }
    tied = models[0].lm_head.weight is cores[0].embed_tokens.weight
    out["head"] = out["embed"] if tied else join([m.lm_head.weight for m in models])  # [G, V, d]
    for i in range(len(cores[0].layers)):
        layers = [c.layers[i] for c in cores]
        out["layers"].append([join([_weight(layer, name) for layer in layers]) for name in _LAYER])
    return out


def _weight(layer, dotted: str) -> torch.Tensor:
    module = layer
    for part in dotted.split("."):
        module = getattr(module, part)
    return module.weight


@functools.lru_cache(maxsize=32)
def _rotary(seq_len: int, head_dim: int, theta: float, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [T, head_dim] in fp32, as transformers' default rotary embedding computes them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.arange(seq_len, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(device), emb.sin().to(device)


@functools.lru_cache(maxsize=32)
def _causal_mask(seq_len: int, device: str) -> torch.Tensor:
    """Additive causal mask [T, T]: 0 on and below the diagonal, the most negative fp32 above (as transformers)."""
    return torch.full((seq_len, seq_len), torch.finfo(torch.float32).min, device=device).triu(1)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # x [G, N, d], weight [G, d]; in fp32, then back to x's dtype before the gain (transformers' order)
    dtype = x.dtype
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight[:, None, :] * x32.to(dtype)


def _linear(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # [G, N, in] x [G, out, in] -> [G, N, out]. One model: a plain linear, 20-40% faster than a batched matmul
    # of one on CPU (oneDNN's mm against its bmm, fwd+bwd, 2 cores).
    if weight.shape[0] == 1:
        return F.linear(x[0], weight[0]).unsqueeze(0)
    return torch.matmul(x, weight.transpose(1, 2))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def logits(weights: dict, ids: torch.Tensor, cfg: ModelConfig, attention: str = "sdpa",
           rms_eps: float = 1e-6, rope_theta: float = 10000.0, head_fp32: bool = False) -> torch.Tensor:
    """Next-token logits [G, b, T, V] of G models on token ids [G, b, T]; attention "sdpa" or "eager" (as transformers').

    head_fp32: the output head in fp32 even under autocast (evaluation: fp32 logits, the body at training precision).
    """
    G, b, T = ids.shape
    V, d = weights["embed"].shape[1:]
    H, K, hd = cfg.n_head, cfg.n_kv_head, cfg.head_dim
    device = str(ids.device)
    # One embedding lookup for all G tables: member g's ids index rows g*V .. g*V+V-1 of the flattened tables.
    offsets = (torch.arange(G, device=ids.device) * V).view(G, 1, 1)
    x = F.embedding(ids + offsets, weights["embed"].reshape(G * V, d)).view(G, b * T, d)  # [G, N, d]
    cached = not torch.compiler.is_compiling()  # under torch.compile the tables are traced into the graph instead
    cos, sin = (_rotary if cached else _rotary.__wrapped__)(T, hd, float(rope_theta), device)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)  # [T, hd]; fp32 like the residual stream, as in transformers
    for attn_norm, wq, wk, wv, wo, mlp_norm, w_gate, w_up, w_down in weights["layers"]:
        h = _rms_norm(x, attn_norm, rms_eps)
        q = _linear(h, wq).view(G * b, T, H, hd).transpose(1, 2)  # [G*b, H, T, hd]
        k = _linear(h, wk).view(G * b, T, K, hd).transpose(1, 2)  # [G*b, K, T, hd]
        v = _linear(h, wv).view(G * b, T, K, hd).transpose(1, 2)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        if K != H:  # grouped-query attention: each key/value head serves H/K query heads
            k = k[:, :, None].expand(G * b, K, H // K, T, hd).reshape(G * b, H, T, hd)
            v = v[:, :, None].expand(G * b, K, H // K, T, hd).reshape(G * b, H, T, hd)
        if attention == "eager":
            mask = (_causal_mask if cached else _causal_mask.__wrapped__)(T, device)
            scores = torch.matmul(q, k.transpose(2, 3)) * hd ** -0.5 + mask
            probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = torch.matmul(probs, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=hd ** -0.5)
        out = out.transpose(1, 2).reshape(G, b * T, H * hd)  # [G, N, H*hd]
        x = x + _linear(out, wo)
        h = _rms_norm(x, mlp_norm, rms_eps)
        x = x + _linear(F.silu(_linear(h, w_gate)) * _linear(h, w_up), w_down)
    x = _rms_norm(x, weights["norm"], rms_eps)
    if head_fp32:
        with torch.autocast(x.device.type, enabled=False):
            return _linear(x.float(), weights["head"].float()).view(G, b, T, V)
    return _linear(x, weights["head"]).view(G, b, T, V)


def losses(weights: dict, rows: torch.Tensor, cfg: ModelConfig, attention: str = "sdpa", **kw) -> torch.Tensor:
    """Mean next-token cross-entropy (nats/token) per model: [G], from rows [G, b, T+1]."""
    out = logits(weights, rows[..., :-1], cfg, attention, **kw)  # [G, b, T, V]
    V = out.shape[-1]
    # One mean-reduced cross-entropy per model, not reduction="none" then a mean: the stride-0 gradient
    # that a mean hands back makes CPU's log-softmax backward take ~2 ms instead of ~0.1 (torch 2.13).
    return torch.stack([F.cross_entropy(member.reshape(-1, V), targets.reshape(-1))
                        for member, targets in zip(out, rows[..., 1:])])


def hf_settings(model) -> dict:
    """The keyword arguments of `logits` that come from a transformers model's config (norm epsilon, rotary base)."""
    hf = model.config
    return dict(rms_eps=float(hf.rms_norm_eps), rope_theta=float(hf.rope_parameters["rope_theta"]))
