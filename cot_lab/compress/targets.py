"""What compression acts on: the linear weights of the transformer blocks, and calibration activations.

Counted over: the 7 `nn.Linear` weights of every Llama block (attention q, k, v, o and SwiGLU gate,
up, down). Embeddings, the (tied) output head and the RMSNorm gains are never pruned: the embedding
is a lookup (pruning it deletes tokens) and it is tied to the output head in these models.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from cot_lab.core import validate
from cot_lab.data.base import Corpus

BLOCK_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
DEFAULT_CALIBRATION_SEQUENCES = 32  # Wanda used 128 x 2048 tokens; a few thousand tokens rank a tiny model's inputs
CALIBRATION_SEED = 1234  # train-split rows, never the validation rows the loss is measured on


def check_model(model) -> None:
    """ValueError unless `model` is a Llama-style causal LM from `cl.build_model` (arch='dense')."""
    inner = getattr(model, "model", None)
    layers = getattr(inner, "layers", None)
    if not isinstance(model, nn.Module) or layers is None or getattr(model.config, "model_type", None) != "llama":
        raise ValueError(f"model={type(model).__name__} is not supported: compression works on dense Llama-style "
                         f"models from cl.build_model(cfg) with arch='dense' (or run.load_model())")


def block_linears(model) -> list[tuple[int, str, nn.Linear]]:
    """(layer index, name such as 'mlp.up_proj', module) for every prunable linear, in layer order."""
    check_model(model)
    out = []
    for i, layer in enumerate(model.model.layers):
        for name in BLOCK_LINEARS:
            out.append((i, name, layer.get_submodule(name)))
    return out


def check_fraction(name: str, value, *, upper: float = 1.0) -> float:
    """`value` as a float in [0, upper) (validate.fraction, with a pruning example in the message)."""
    return validate.fraction(name, value, upper=upper, hint="e.g. 0.5 for half the weights")


def calibration_rows(model, corpus: Corpus, n_sequences: int, seed: int = CALIBRATION_SEED) -> torch.Tensor:
    """`n_sequences` train-split rows [n, T+1] of the model's context length T (token ids)."""
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus={corpus!r} must be a corpus from cl.load_corpus(...) (calibration batches come "
                         f"from its train split)")
    n_sequences = validate.integer("calibration_sequences", n_sequences, hint="e.g. 32")
    seq_len = int(model.config.max_position_embeddings)
    return next(corpus.train_batches(n_sequences, seq_len, seed))


class _StopForward(Exception):
    """Raised by a hook once the layer of interest has seen its inputs: later layers need not run."""


def input_sq_norms(model, modules: Iterable[nn.Module], rows: torch.Tensor, *, stop_after: nn.Module | None = None,
                   batch_size: int = 8) -> dict[nn.Module, torch.Tensor]:
    """Sum over calibration tokens of each input feature's square, ||X_j||_2^2, for every module (float32 [in], CPU).

    Forward hooks read each module's input while the model scores `rows` [n, T+1]. With `stop_after`,
    the forward stops after that module has run (Wanda calibrates one block at a time).
    """
    sums: dict[nn.Module, torch.Tensor] = {}

    def record(module, args):
        x = args[0].detach().float().flatten(0, -2)  # [tokens, in_features]
        sums[module] = sums.get(module, 0) + (x * x).sum(0)

    def stop(module, args, output):
        raise _StopForward

    handles = [m.register_forward_pre_hook(record) for m in modules]
    if stop_after is not None:
        handles.append(stop_after.register_forward_hook(stop))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, rows.shape[0], batch_size):
                try:
                    model(input_ids=rows[start:start + batch_size, :-1].to(device))
                except _StopForward:
                    pass
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {m: s.cpu() for m, s in sums.items()}
