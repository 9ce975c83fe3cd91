"""Parameter and FLOP accounting: plain functions of a ModelConfig.

Three FLOP conventions, all for *training* (forward + backward = 3x forward) per token:
  "6n"         C = 6 N per token, N = all parameters a token touches (Hoffmann et al. 2022, C ~ 6ND).
  "kaplan"     C = 6 N_nonembed + 6 n_layer n_ctx d_attn  (Kaplan et al. 2020, Table 1 and Sec. 2.1).
  "chinchilla" Hoffmann et al. 2022 App. F term by term, counting what the model executes: the
               input embedding is a table lookup (0 FLOPs), so the paper's 2*vocab*d embedding
               term is reported by `flops_breakdown` but left out of the total. Backward = 2x forward.
"""
from __future__ import annotations

from typing import NamedTuple

from cot_lab.core.config import ModelConfig, config_of

METHODS = ("6n", "kaplan", "chinchilla")


class ParamCount(NamedTuple):
    """Parameter counts (parameters). `embedding` is every vocab x d_model matrix (input, and output head if untied)."""

    total: int
    non_embedding: int
    embedding: int


def _attention_params(cfg: ModelConfig) -> int:
    q_and_o = 2 * cfg.d_model * cfg.n_head * cfg.head_dim
    k_and_v = 2 * cfg.d_model * cfg.n_kv_head * cfg.head_dim
    return q_and_o + k_and_v


def _mlp_params(cfg: ModelConfig, *, active: bool) -> int:
    """SwiGLU (gate, up, down) params per layer; for MoE, all experts or only the top_k a token uses, plus the router."""
    swiglu = 3 * cfg.d_model * cfg.d_ff
    if cfg.arch == "dense":
        return swiglu
    router = cfg.d_model * cfg.n_experts
    return (cfg.top_k if active else cfg.n_experts) * swiglu + router


def count_params(cfg: ModelConfig) -> ParamCount:
    """Parameter counts of the model `build_model(cfg)` builds (equal to summing its tensors)."""
    embedding = cfg.vocab_size * cfg.d_model * (1 if cfg.tie_embeddings else 2)
    norms = (2 * cfg.n_layer + 1) * cfg.d_model  # RMSNorm gains: two per layer and a final one
    per_layer = _attention_params(cfg) + _mlp_params(cfg, active=False)
    non_embedding = cfg.n_layer * per_layer + norms
    return ParamCount(non_embedding + embedding, non_embedding, embedding)


def active_params(cfg: ModelConfig) -> int:
    """Parameters one token passes through (parameters): equal to the total for dense, top_k experts for MoE."""
    return count_params(cfg).total - cfg.n_layer * (_mlp_params(cfg, active=False) - _mlp_params(cfg, active=True))


def flops_breakdown(cfg: ModelConfig, seq_len: int | None = None) -> dict[str, float]:
    """Forward FLOPs per token by Hoffmann et al. 2022 App. F term (FLOPs/token, forward only).

    The key "embedding (paper convention)" is the paper's 2*vocab*d_model input term, which a
    lookup table never executes; `flops_per_token(method="chinchilla")` leaves it out.
    """
    seq = cfg.seq_len if seq_len is None else seq_len
    if not isinstance(seq, int) or seq <= 0:
        raise ValueError(f"seq_len={seq!r} must be a positive integer (tokens of context)")
    d_attn = cfg.n_head * cfg.head_dim
    layers = cfg.n_layer
    return {
        "embedding (paper convention)": 2.0 * cfg.vocab_size * cfg.d_model,
        "attention projections": 2.0 * layers * _attention_params(cfg),
        "attention logits QK": 2.0 * layers * seq * d_attn,
        "attention softmax": 3.0 * layers * cfg.n_head * seq,
        "attention values AV": 2.0 * layers * seq * d_attn,
        "mlp": 2.0 * layers * _mlp_params(cfg, active=True),
        "output logits": 2.0 * cfg.d_model * cfg.vocab_size,
    }


def flops_per_token(cfg: ModelConfig, method: str = "chinchilla", seq_len: int | None = None) -> float:
    """Training FLOPs per token (forward + backward) under `method`: "chinchilla", "kaplan" or "6n"."""
    seq = cfg.seq_len if seq_len is None else seq_len
    if method == "6n":
        return 6.0 * active_params(cfg)
    if method == "kaplan":
        counts = count_params(cfg)
        non_embedding_active = counts.non_embedding - (counts.total - active_params(cfg))
        return 6.0 * non_embedding_active + 6.0 * cfg.n_layer * seq * cfg.n_head * cfg.head_dim
    if method == "chinchilla":
        terms = flops_breakdown(cfg, seq)
        forward = sum(v for k, v in terms.items() if k != "embedding (paper convention)")
        return 3.0 * forward
    raise ValueError(f"method={method!r} is not known; use one of {METHODS}")


def model_flops_per_token(model, method: str = "chinchilla", seq_len: int | None = None) -> float:
    """Training FLOPs per token (forward + backward) of a built model as it is now, pruned or not.

    The same count as `flops_per_token`, read off the model's own shape (`config_of`): structurally
    pruned heads and neurons are gone from it; zeros left by unstructured pruning are counted, because
    dense kernels multiply them anyway.
    """
    return flops_per_token(config_of(model), method, seq_len)


def training_flops(cfg: ModelConfig, tokens: float, method: str = "chinchilla") -> float:
    """Total training FLOPs for `tokens` tokens (FLOPs)."""
    return flops_per_token(cfg, method) * tokens
