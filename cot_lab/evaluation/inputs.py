"""What the evaluation functions score: a model (or a stored run's), and token rows it can read."""
from __future__ import annotations

import numpy as np
import torch


def model_of(model_or_run, name: str = "model_or_run"):
    """The torch model of `model_or_run` (a model, or a cl.Run whose model is loaded); ValueError otherwise."""
    if isinstance(model_or_run, torch.nn.Module):
        return model_or_run
    if hasattr(model_or_run, "load_model") and hasattr(model_or_run, "run_id"):
        return model_or_run.load_model()
    raise ValueError(f"{name}={type(model_or_run).__name__} must be a model (e.g. cl.build_model(cfg)) or a cl.Run "
                     "(its model is loaded from memory or its checkpoint)")


def token_rows(name: str, rows, model) -> torch.Tensor:
    """`rows` as int64 [n >= 1, T+1 >= 2] token ids the model can read: ids in its vocabulary, T in its context;
    ValueError naming `name` otherwise."""
    if not isinstance(rows, torch.Tensor):
        try:
            rows = torch.as_tensor(np.asarray(rows))
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name} must be int token rows [n, T+1]; got {type(rows).__name__}") from None
    if rows.numel() == 0:  # no rows, or rows of no tokens
        raise ValueError(f"{name} must be int token rows [n, T+1] with n >= 1 and T >= 1, and {name} is empty; pass "
                         "at least one document, e.g. corpus.val_batch(64, 128)")
    if rows.dtype.is_floating_point or rows.dtype.is_complex or rows.dtype == torch.bool or rows.ndim != 2 \
            or rows.shape[0] < 1 or rows.shape[1] < 2:
        raise ValueError(f"{name} must be int token rows [n, T+1] with n >= 1 and T >= 1 (e.g. corpus.val_batch(256, "
                         f"128)); got dtype {rows.dtype}, shape {tuple(rows.shape)}")
    vocab = int(model.config.vocab_size)
    context = int(getattr(model.config, "max_position_embeddings", rows.shape[1] - 1))
    if int(rows.min()) < 0 or int(rows.max()) >= vocab:
        raise ValueError(f"{name} holds token ids from {int(rows.min())} to {int(rows.max())}, outside the model's "
                         f"vocabulary 0..{vocab - 1}: score rows of the corpus the model was trained on")
    if rows.shape[1] - 1 > context:
        raise ValueError(f"{name} has rows of {rows.shape[1]} tokens, {rows.shape[1] - 1} positions: at most the "
                         f"model's context, {context} (rows of {context + 1} tokens)")
    return rows.to(torch.int64)
