"""Loss on a corpus's fixed validation set, in nats/token."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from cot_lab.data.base import Corpus

DEFAULT_EVAL_SEQUENCES = 128


def sequence_losses(model, rows: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """Per-token cross-entropy (nats) of `model` on rows [n, T+1]: returns float32 [n, T], computed in fp32."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, rows.shape[0], batch_size):
            chunk = rows[start:start + batch_size].to(device)
            logits = model(input_ids=chunk[:, :-1]).logits  # [b, T, vocab]
            loss = F.cross_entropy(logits.float().transpose(1, 2), chunk[:, 1:], reduction="none")  # [b, T]
            out.append(loss.cpu())
    model.train(was_training)
    return torch.cat(out)


def mean_loss(model, rows: torch.Tensor) -> float:
    """Mean per-token cross-entropy (nats/token) of `model` on rows [n, T+1]."""
    return float(sequence_losses(model, rows).mean())


def evaluate_loss(model, corpus: Corpus, *, n_sequences: int = DEFAULT_EVAL_SEQUENCES, seq_len: int | None = None) -> float:
    """Mean validation loss of `model` on `corpus` (nats/token), over its fixed validation rows."""
    if not isinstance(n_sequences, int) or n_sequences <= 0:
        raise ValueError(f"n_sequences={n_sequences!r} must be a positive integer (validation rows)")
    if seq_len is None:
        seq_len = int(model.config.max_position_embeddings)
    return mean_loss(model, corpus.val_batch(n_sequences, seq_len))
