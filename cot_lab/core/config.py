"""The model config: one dataclass, validated at construction, and the one function that builds it.

Dense models are Llama-style (RMSNorm, rotary positions, SwiGLU MLP, no biases); MoE models
are Mixtral-style (the MLP replaced by `n_experts` SwiGLU experts, `top_k` routed per token).
Both are built from config by `transformers`, so nothing is ever downloaded.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from cot_lab.core import validate

ARCHS = ("dense", "moe")


def _set_integer(cfg, name: str, low: int = 1) -> None:
    """Check field `name` of a frozen config and store it as a plain int (a numpy integer is accepted)."""
    object.__setattr__(cfg, name, validate.integer(name, getattr(cfg, name), low=low))


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
    head_dim: int | None = None  # None -> d_model // n_head; set by structured pruning (fewer heads, same width)

    def __post_init__(self):
        for name in ("d_model", "n_layer", "n_head", "seq_len"):
            _set_integer(self, name)
        _set_integer(self, "vocab_size", low=2)
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", default_d_ff(self.d_model))
        if self.n_kv_head is None:
            object.__setattr__(self, "n_kv_head", self.n_head)
        _set_integer(self, "d_ff")
        _set_integer(self, "n_kv_head")
        if self.head_dim is not None:
            _set_integer(self, "head_dim")
        elif self.d_model % self.n_head:
            divisors = [h for h in range(1, self.d_model + 1) if self.d_model % h == 0 and (self.d_model // h) % 2 == 0]
            raise ValueError(
                f"n_head={self.n_head} does not divide d_model={self.d_model}; "
                f"head counts that work for this width: {divisors[-8:]}"
            )
        else:
            object.__setattr__(self, "head_dim", self.d_model // self.n_head)
        if self.head_dim % 2:
            raise ValueError(
                f"head_dim = d_model/n_head = {self.head_dim} must be even for rotary positions; "
                f"choose n_head so that d_model/n_head is even (e.g. head_dim 16, 32 or 64)"
            )
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head} (grouped-query attention)")
        validate.one_of("arch", self.arch, ARCHS)
        if self.arch == "moe":
            _set_integer(self, "n_experts")
            _set_integer(self, "top_k")
            if self.top_k > self.n_experts:
                raise ValueError(f"top_k={self.top_k} must be at most n_experts={self.n_experts}")

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated again)."""
        if "d_model" in changes and "d_ff" not in changes:
            changes["d_ff"] = None  # keep the default ratio when the width changes
        if ("d_model" in changes or "n_head" in changes) and "head_dim" not in changes:
            changes["head_dim"] = None  # heads keep splitting the width evenly
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The fields as a dict; head_dim only when it differs from d_model // n_head, so that run keys
        of models trained before the field existed stay the same."""
        out = dataclasses.asdict(self)
        if out["head_dim"] == self.d_model // self.n_head:
            del out["head_dim"]
        return out


def import_model_classes():
    """transformers' Llama and Mixtral config and model classes: the first call imports them (~5 s on a laptop CPU).

    A panel calls it before training so that its Stop is honoured between the import and the first step.
    """
    from cot_lab.core.interrupts import interrupts_deferred
    from cot_lab.core.quiet import quiet_imports

    # quiet: transformers imports torchao (when installed) here, which logs harmless noise;
    # deferred: a Stop during this first import would leave transformers broken until a restart
    with interrupts_deferred(), quiet_imports():
        from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM
        from transformers.quantizers import auto as _quantizers  # noqa: F401  (the import that pulls torchao in)
    return LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM


def build_model(cfg: ModelConfig, *, seed: int | None = None):
    """A freshly initialised `transformers` causal LM for `cfg` (LlamaForCausalLM or MixtralForCausalLM), SDPA attention."""
    import torch

    LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM = import_model_classes()

    common = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head,
        max_position_embeddings=cfg.seq_len,
        head_dim=cfg.head_dim,
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
    model = model_cls(hf_cfg)
    if cfg.arch == "moe":
        model.set_experts_implementation(experts_implementation(cfg))
    return model


def experts_implementation(cfg: ModelConfig) -> str:
    """transformers' kernel for an MoE config's experts: "grouped_mm" (one grouped matmul over the routed tokens,
    the fastest on a 2-core CPU: `benchmarks/moe_experts_speed.py`) where its rule of 16-byte strides holds for
    every dtype the kit trains in (expert width d_ff a multiple of 8), else "eager" (a loop over the experts).
    Both compute the same function, to fp32 summation order; the FLOPs counted are the model's either way."""
    return "grouped_mm" if cfg.d_ff % 8 == 0 else "eager"


def config_of(model) -> ModelConfig:
    """The ModelConfig of a built (or structurally pruned) Llama / Mixtral model: its shape as it is now."""
    hf = getattr(model, "config", None)
    kind = type(model).__name__
    if kind not in ("LlamaForCausalLM", "MixtralForCausalLM") or hf is None:
        raise ValueError(f"model={kind} is not a cot-lab model; build one with cl.build_model(cfg)")
    moe = kind == "MixtralForCausalLM"
    fields = dict(d_model=hf.hidden_size, n_layer=hf.num_hidden_layers, n_head=hf.num_attention_heads,
                  n_kv_head=hf.num_key_value_heads, head_dim=getattr(hf, "head_dim", None) or None,
                  d_ff=hf.intermediate_size, vocab_size=hf.vocab_size, seq_len=hf.max_position_embeddings,
                  tie_embeddings=bool(hf.tie_word_embeddings), arch="moe" if moe else "dense")
    if moe:
        fields.update(n_experts=hf.num_local_experts, top_k=hf.num_experts_per_tok)
    return ModelConfig(**fields)
