"""Structured pruning: cut whole attention heads or whole SwiGLU neurons out of a Llama model's matrices.

The matrices really shrink (new, smaller `nn.Linear`s), so the model has fewer parameters and runs
faster on dense kernels. transformers' LlamaConfig holds one head count and one MLP width for all
layers, so every layer loses the same number of heads (or neurons): the config stays a plain, valid
LlamaConfig that saves and reloads. Which heads / neurons go is decided per layer by a score.

Exactness: round(s * n_head) heads of every layer (with grouped-query attention, round(s * g) of
the g query heads that share each key/value head, keeping all key/value heads), and
round(s * d_ff) neurons of every layer. A sparsity that is a multiple of 1/n_head (1/g, 1/d_ff) is
achieved exactly; any other is rounded to the nearest whole head or neuron, and the achieved
fraction is what `pruning_report` shows.
"""
from __future__ import annotations

import torch
from torch import nn

from cot_lab.compress.targets import input_sq_norms


def _shrunk(linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new bias-free Linear holding linear.weight[rows][:, cols] (indices; None keeps all)."""
    w = linear.weight.detach()
    if rows is not None:
        w = w[rows.to(w.device)]
    if cols is not None:
        w = w[:, cols.to(w.device)]
    new = nn.Linear(w.shape[1], w.shape[0], bias=False, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
    return new


def _head_slices(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Row (or column) indices of the given heads in a [n_heads * head_dim] projection."""
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None, :]).flatten()


def _block_norms(w: torch.Tensor, n_blocks: int, dim: int) -> torch.Tensor:
    """Frobenius norm of each of `n_blocks` equal slices of `w` along `dim` (float32 [n_blocks])."""
    parts = w.detach().float().reshape(n_blocks, -1, w.shape[1]) if dim == 0 else \
        w.detach().float().reshape(w.shape[0], n_blocks, -1).transpose(0, 1)
    return parts.flatten(1).norm(dim=1)


def _check_keep(kind: str, sparsity: float, per: int, remove: int) -> None:
    if per - remove < 1:
        raise ValueError(f"sparsity={sparsity:g} would remove all {per} {kind} of a layer; use a sparsity below "
                         f"{(per - 0.5) / per:.3g} so at least one stays")


@torch.no_grad()
def prune_heads(model, sparsity: float, rows: torch.Tensor | None) -> list[dict]:
    """Remove round(sparsity * group) query heads per key/value group in every layer (whole heads for MHA).

    Score of a query head h: with calibration rows, sum over its o_proj input columns j of
    ||X_j||_2 * ||W_o[:, j]||_2 (how much it writes into the residual stream); without, the product of
    the Frobenius norms of its q, k, v and o slices.
    """
    cfg = model.config
    layers = list(model.model.layers)
    n_head, n_kv = cfg.num_attention_heads, cfg.num_key_value_heads
    head_dim = layers[0].self_attn.head_dim
    group = n_head // n_kv
    mha = group == 1  # every head has its own k and v: a pruned head takes them with it
    remove = round(sparsity * (n_head if mha else group))
    _check_keep("heads" if mha else "query heads of a key/value group", sparsity, n_head if mha else group, remove)
    sq = input_sq_norms(model, [layer.self_attn.o_proj for layer in layers], rows) if rows is not None else None
    per_layer = []
    for i, layer in enumerate(layers):
        attn = layer.self_attn
        if sq is not None:
            contrib = sq[attn.o_proj].sqrt() * attn.o_proj.weight.detach().float().norm(dim=0).to("cpu")
            score = contrib.reshape(n_head, head_dim).sum(1)
        else:
            kv_norm = _block_norms(attn.k_proj.weight, n_kv, 0) * _block_norms(attn.v_proj.weight, n_kv, 0)
            score = (_block_norms(attn.q_proj.weight, n_head, 0) * _block_norms(attn.o_proj.weight, n_head, 1)
                     * kv_norm.repeat_interleave(group)).cpu()
        # rank within each key/value group (one group per head for MHA), keep the best, in the original order
        by_group = score.reshape(n_kv, group) if not mha else score.reshape(1, n_head)
        keep_in = torch.topk(by_group, by_group.shape[1] - remove, dim=1).indices.sort(dim=1).values
        base = torch.arange(by_group.shape[0])[:, None] * by_group.shape[1]
        keep_q = (keep_in + base).flatten()
        keep_kv = keep_q if mha else torch.arange(n_kv)
        attn.q_proj = _shrunk(attn.q_proj, rows=_head_slices(keep_q, head_dim))
        attn.k_proj = _shrunk(attn.k_proj, rows=_head_slices(keep_kv, head_dim))
        attn.v_proj = _shrunk(attn.v_proj, rows=_head_slices(keep_kv, head_dim))
        attn.o_proj = _shrunk(attn.o_proj, cols=_head_slices(keep_q, head_dim))
        attn.num_key_value_groups = len(keep_q) // len(keep_kv)
        removed = n_head - len(keep_q)
        per_layer.append({"layer": i, "part": "heads", "total": n_head, "pruned": removed, "sparsity": removed / n_head})
    # head_dim is written out explicitly: with fewer heads it is no longer hidden_size / num_attention_heads
    cfg.head_dim = head_dim
    cfg.num_attention_heads = n_head - per_layer[0]["pruned"]
    cfg.num_key_value_heads = cfg.num_attention_heads if mha else n_kv
    return per_layer


@torch.no_grad()
def prune_mlp(model, sparsity: float, rows: torch.Tensor | None) -> list[dict]:
    """Remove round(sparsity * d_ff) SwiGLU neurons in every layer (rows of gate and up, columns of down).

    Score of neuron n: with calibration rows, ||X_n||_2 * ||W_down[:, n]||_2 where X_n is its activation
    silu(gate) * up (Wanda's score summed over the neuron's output column); without, the product of the
    norms of its gate row, up row and down column.
    """
    cfg = model.config
    layers = list(model.model.layers)
    d_ff = cfg.intermediate_size
    remove = round(sparsity * d_ff)
    _check_keep("neurons", sparsity, d_ff, remove)
    sq = input_sq_norms(model, [layer.mlp.down_proj for layer in layers], rows) if rows is not None else None
    per_layer = []
    for i, layer in enumerate(layers):
        mlp = layer.mlp
        down_norm = mlp.down_proj.weight.detach().float().norm(dim=0).cpu()
        if sq is not None:
            score = sq[mlp.down_proj].sqrt() * down_norm
        else:
            score = (mlp.gate_proj.weight.detach().float().norm(dim=1) * mlp.up_proj.weight.detach().float().norm(dim=1)
                     ).cpu() * down_norm
        keep = torch.topk(score, d_ff - remove).indices.sort().values
        mlp.gate_proj = _shrunk(mlp.gate_proj, rows=keep)
        mlp.up_proj = _shrunk(mlp.up_proj, rows=keep)
        mlp.down_proj = _shrunk(mlp.down_proj, cols=keep)
        mlp.intermediate_size = d_ff - remove
        per_layer.append({"layer": i, "part": "neurons", "total": d_ff, "pruned": remove, "sparsity": remove / d_ff})
    cfg.intermediate_size = d_ff - remove
    return per_layer
