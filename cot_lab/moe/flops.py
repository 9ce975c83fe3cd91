"""The kit's parameter and FLOP accounting checked against the model itself: tensors summed, matmuls counted.

`measured_flops_per_token` runs one forward and backward under `torch.utils.flop_counter.FlopCounterMode`, which
counts the FLOPs of every matrix product torch executes (2 per multiply-add). Two settings make it see them all:
  - experts on the "eager" path: transformers 5.x picks "grouped_mm" by default, a kernel the counter has no
    formula for (it would miss every expert matmul); "eager" runs one `linear` per expert on its routed tokens.
  - attention on the "eager" path: on a CPU, SDPA dispatches to a flash kernel the counter does not count either;
    eager attention is two batched matmuls over the full T x T scores (masked, not skipped), which is the
    convention of the kit's count (Hoffmann et al. 2022, arXiv 2203.15556, App. F: 2 n_ctx d_attn per token).
The counter counts matrix products only, so it misses what the kit's App. F count adds beyond them: the
attention softmax, 3 n_head n_ctx FLOPs per layer per token forward (9 x that for training). Nothing else in
the App. F count is missing from the model, so kit / counter - 1 is that softmax share, well under 1%.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from cot_lab.core import validate
from cot_lab.core.accounting import active_params, count_params, flops_per_token
from cot_lab.core.config import ModelConfig, build_model, config_of


class AccountingCheck(NamedTuple):
    """The kit's counts of a config next to the ones measured on the model it builds.

    flops: training FLOPs per token (forward + backward); params: parameters; errors are kit / measured - 1.
    """

    kit_flops: float
    measured_flops: float
    kit_total_params: int
    measured_total_params: int
    kit_active_params: int
    measured_active_params: int

    @property
    def flops_error(self) -> float:
        return self.kit_flops / self.measured_flops - 1.0

    @property
    def total_params_error(self) -> float:
        return self.kit_total_params / self.measured_total_params - 1.0

    @property
    def active_params_error(self) -> float:
        return self.kit_active_params / self.measured_active_params - 1.0


def _experts_modules(model) -> list:
    """The fused experts modules of a transformers MoE model (3-D `gate_up_proj` and `down_proj`), one per layer."""
    return [m for m in model.modules() if hasattr(m, "gate_up_proj") and hasattr(m, "down_proj")]


def measured_params(model) -> tuple[int, int]:
    """(total, active) parameters (parameters) summed over the model's own tensors, a tied embedding counted once.

    Active: each layer's fused expert tensors count top_k / n_experts of their size (what one token passes through).
    """
    total = sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once
    top_k, n_experts = getattr(model.config, "num_experts_per_tok", 1), getattr(model.config, "num_local_experts", 1)
    inactive = 0
    for experts in _experts_modules(model):
        size = experts.gate_up_proj.numel() + experts.down_proj.numel()
        inactive += size * (n_experts - top_k) // n_experts
    return total, total - inactive


def _set_implementations(model, attention: str, experts: str | None) -> tuple[str, str | None]:
    """Switch attention (and experts, for MoE) implementations; returns the previous ones to restore."""
    old_attention = model.config._attn_implementation
    old_experts = model.config._experts_implementation if _experts_modules(model) else None
    model.set_attn_implementation(attention)
    if old_experts is not None and experts is not None:
        model.set_experts_implementation(experts)
    return old_attention, old_experts


def measured_flops_per_token(model, *, seq_len: int | None = None, batch_size: int = 2, seed: int = 0) -> float:
    """Training FLOPs per token (forward + backward) that torch executes for `model`, counted by FlopCounterMode
    on `batch_size` rows of `seq_len` random tokens, attention and experts on their eager paths.

    The model's weights, gradients and implementations are as before afterwards: the backward takes the gradients
    with `torch.autograd.grad` (the same matmuls as `.backward()`), so no `.grad` is written.
    """
    from torch.utils.flop_counter import FlopCounterMode

    cfg = config_of(model)
    seq = validate.integer("seq_len", cfg.seq_len if seq_len is None else seq_len, hint="tokens per row, e.g. 64")
    rows = validate.integer("batch_size", batch_size, hint="rows of tokens, e.g. 2")
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, cfg.vocab_size, (rows, seq + 1), generator=generator).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    old_attention, old_experts = _set_implementations(model, "eager", "eager")
    try:
        with FlopCounterMode(display=False) as counter:
            logits = model(input_ids=ids[:, :-1]).logits
            loss = F.cross_entropy(logits.float().flatten(0, 1), ids[:, 1:].flatten())
            torch.autograd.grad(loss, params, allow_unused=True)
    finally:
        _set_implementations(model, old_attention, old_experts)
    return counter.get_total_flops() / (rows * seq)


def check_accounting(cfg: ModelConfig, *, seq_len: int | None = None, batch_size: int = 2,
                     seed: int = 0) -> AccountingCheck:
    """`flops_per_token(cfg, "chinchilla")`, `count_params(cfg).total` and `active_params(cfg)` next to the same
    counts measured on `build_model(cfg)` (FLOPs per token, parameters)."""
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"cfg={cfg!r} must be a cl.ModelConfig")
    seq = cfg.seq_len if seq_len is None else seq_len
    model = build_model(cfg, seed=seed)
    total, active = measured_params(model)
    return AccountingCheck(kit_flops=flops_per_token(cfg, "chinchilla", seq_len=seq),
                           measured_flops=measured_flops_per_token(model, seq_len=seq, batch_size=batch_size, seed=seed),
                           kit_total_params=count_params(cfg).total, measured_total_params=total,
                           kit_active_params=active_params(cfg), measured_active_params=active)


def router_overhead(cfg: ModelConfig) -> tuple[int, float]:
    """(parameters, training FLOPs per token) of `cfg`'s routers alone: n_layer * d_model * n_experts parameters,
    6 x that in FLOPs (a d_model x n_experts matmul forward, twice that backward). Zero for a dense config.

    This is all that separates an MoE with one expert and top-1 from the dense model of the same shape.
    """
    if cfg.arch != "moe":
        return 0, 0.0
    params = cfg.n_layer * cfg.d_model * cfg.n_experts
    return params, 6.0 * params
