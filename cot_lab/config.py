"""The model config: one dataclass, validated at construction, and the one function that builds it.

Dense models are Llama-style (RMSNorm, rotary positions, SwiGLU MLP, no biases); MoE models
are Mixtral-style (the MLP replaced by `n_experts` SwiGLU experts, `top_k` routed per token).
Both are built from config by `transformers`, so nothing is ever downloaded.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

ARCHS = ("dense", "moe")


def _positive_int(name: str, value, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}={value!r} must be a positive integer{hint}")


def default_d_ff(d_model: int) -> int:
    """SwiGLU hidden width: 8/3 * d_model rounded up to a multiple of 8, so the MLP has ~8 d^2 params."""
    return 8 * math.ceil(8 * d_model / 3 / 8)


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a decoder-only transformer. All sizes are counts (dims, layers, tokens)."""

    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4
    vocab_size: int = 512
    seq_len: int = 128
    d_ff: int | None = None  # SwiGLU width per MLP (per expert for MoE); None -> default_d_ff(d_model)
    n_kv_head: int | None = None  # grouped-query attention; None -> n_head
    tie_embeddings: bool = True  # share input embedding and output head (keeps tiny models from being all embedding)
    arch: str = "dense"  # "dense" | "moe"
    n_experts: int = 8  # MoE only
    top_k: int = 2  # MoE only: experts active per token

    def __post_init__(self):
        for name in ("d_model", "n_layer", "n_head", "vocab_size", "seq_len"):
            _positive_int(name, getattr(self, name))
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", default_d_ff(self.d_model))
        if self.n_kv_head is None:
            object.__setattr__(self, "n_kv_head", self.n_head)
        _positive_int("d_ff", self.d_ff)
        _positive_int("n_kv_head", self.n_kv_head)
        if self.d_model % self.n_head:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0 and (self.d_model // h) % 2 == 0]
            raise ValueError(
                f"n_head={self.n_head} does not divide d_model={self.d_model}; "
                f"head counts that work for this width: {divisors[-8:]}"
            )
        if self.head_dim % 2:
            raise ValueError(
                f"head_dim = d_model/n_head = {self.head_dim} must be even for rotary positions; "
                f"choose n_head so that d_model/n_head is even (e.g. head_dim 16, 32 or 64)"
            )
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head} (grouped-query attention)")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size={self.vocab_size} must be at least 2")
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r} is not known; use one of {ARCHS}")
        if self.arch == "moe":
            _positive_int("n_experts", self.n_experts)
            _positive_int("top_k", self.top_k)
            if self.top_k > self.n_experts:
                raise ValueError(f"top_k={self.top_k} must be at most n_experts={self.n_experts}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        if "d_model" in changes and "d_ff" not in changes:
            changes["d_ff"] = None  # keep the default ratio when the width changes
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def preset(n_params: float, *, vocab_size: int = 512, seq_len: int = 128, arch: str = "dense", **overrides) -> ModelConfig:
    """A well-shaped config whose total parameter count is near `n_params` (parameters).

    Shape rule (why: Kaplan et al. 2020 Fig. 5 find loss nearly flat in aspect ratio over a wide
    range, so we fix a moderate one): head_dim 16 below d_model 128 else 32, and
    d_model / n_layer close to 32, between 16 and 64; among such shapes the one closest
    to the target in log-parameters wins.
    """
    from .accounting import count_params

    if not isinstance(n_params, (int, float)) or isinstance(n_params, bool) or not n_params > 0:
        raise ValueError(f"n_params={n_params!r} must be a positive number of parameters, e.g. 1e6")
    best, best_score = None, math.inf
    for n_layer in range(1, 33):
        for d_model in range(16, 2049, 16):
            aspect = d_model / n_layer
            if not 8 <= aspect <= 128:
                continue
            head_dim = 16 if d_model < 128 else 32
            if d_model % head_dim:
                continue
            cfg = ModelConfig(
                d_model=d_model, n_layer=n_layer, n_head=d_model // head_dim, vocab_size=vocab_size,
                seq_len=seq_len, arch=arch, **overrides,
            )
            total = count_params(cfg).total
            score = abs(math.log(total / n_params)) + 0.1 * abs(math.log(aspect / 32))
            if score < best_score:
                best, best_score = cfg, score
    return best


def build_model(cfg: ModelConfig, *, seed: int | None = None):
    """A freshly initialised `transformers` causal LM for `cfg` (LlamaForCausalLM or MixtralForCausalLM), SDPA attention."""
    import torch

    from .quiet import quiet_imports

    with quiet_imports():  # transformers imports torchao (when installed) here, which logs harmless noise
        from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM
        from transformers.quantizers import auto as _quantizers  # noqa: F401  (the import that pulls torchao in)

    common = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head,
        max_position_embeddings=cfg.seq_len,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        use_cache=False,
    )
    if cfg.arch == "moe":
        hf_cfg = MixtralConfig(num_local_experts=cfg.n_experts, num_experts_per_tok=cfg.top_k, **common)
        model_cls = MixtralForCausalLM
    else:
        hf_cfg = LlamaConfig(attention_bias=False, mlp_bias=False, **common)
        model_cls = LlamaForCausalLM
    hf_cfg._attn_implementation = "sdpa"
    if seed is not None:
        torch.manual_seed(seed)
    return model_cls(hf_cfg)
