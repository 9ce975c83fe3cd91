"""Recovery fine-tuning: train a pruned model a little more, under a budget, without letting pruned weights back.

Same recipe and pieces as `cl.train` (AdamW, warmup + cosine schedule over the budget, clipping,
bf16 autocast where native). Pruned weights stay exactly zero: their gradients are masked (so
AdamW's moments never see them) and the mask is applied again after every step (so weight decay
and rounding cannot revive them either). Structurally pruned matrices need no mask: the removed
heads and neurons are gone from the shapes.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import torch

from ..data.base import Corpus
from ..evaluate import DEFAULT_EVAL_SEQUENCES, mean_loss
from ..hardware import resolve_device
from ..train import (_check_budget, _make_optimizer, _resolve_precision, _train_step, _training_attention,
                     default_lr, lr_at, next_token_loss)
from .quantization import is_quantized
from .record import add_record
from .targets import block_linears, check_model

FINETUNE_LR_SHARE = 0.3  # of the from-scratch peak: the weights are already trained, large steps undo that


def model_flops_per_token(model, seq_len: int | None = None) -> float:
    """Training FLOPs per token (forward + backward) of `model` as it is now: Hoffmann et al. 2022 App. F terms.

    3 x forward, forward = 2 x (block matrices + output head) + attention logits and values
    (4 x n_layer x seq_len x n_head x head_dim) + softmax (3 x n_layer x n_head x seq_len). Zeros left by
    unstructured pruning are counted: dense kernels multiply them anyway. Equals
    `cl.flops_per_token(cfg)` for an unpruned model.
    """
    targets = block_linears(model)
    cfg = model.config
    seq = int(cfg.max_position_embeddings) if seq_len is None else seq_len
    layers = cfg.num_hidden_layers
    attn = model.model.layers[0].self_attn
    d_attn = cfg.num_attention_heads * attn.head_dim
    matmul = sum(lin.weight.numel() for _, _, lin in targets) + cfg.vocab_size * cfg.hidden_size
    forward = 2.0 * matmul + 4.0 * layers * seq * d_attn + 3.0 * layers * cfg.num_attention_heads * seq
    return 3.0 * forward


def _masks(model) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
    """(weight, keep-mask) for every block matrix holding exact zeros."""
    out = []
    for _, _, lin in block_linears(model):
        keep = lin.weight.detach() != 0
        if not bool(keep.all()):
            out.append((lin.weight, keep))
    return out


def recover(model, corpus: Corpus, *, flops: float | None = None, tokens: float | None = None,
            seconds: float | None = None, seed: int = 1, batch_size: int = 16, lr: float | None = None,
            warmup: float = 0.05, min_lr_ratio: float = 0.1, weight_decay: float = 0.1, grad_clip: float = 1.0,
            device=None, precision: str = "auto", eval_sequences: int = DEFAULT_EVAL_SEQUENCES):
    """Fine-tune a pruned `model` in place on `corpus` under one budget (FLOPs, tokens or seconds); returns it.

    FLOPs are counted by `model_flops_per_token(model)`. lr=None: FINETUNE_LR_SHARE of `cl.default_lr` for
    the model's width. seed picks the training rows (default 1: other rows than a seed-0 training saw).
    Validation loss (nats/token) before and after, the curve and the cost go to the model's history.
    """
    check_model(model)
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus={corpus!r} must be a corpus from cl.load_corpus(...)")
    if is_quantized(model):
        raise ValueError("model is quantized; recover the pruned float model first, then quantize it")
    kind, value = _check_budget(flops, tokens, seconds)
    for name, v in (("batch_size", batch_size), ("eval_sequences", eval_sequences), ("seed", seed)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed" else 1):
            raise ValueError(f"{name}={v!r} must be a {'non-negative' if name == 'seed' else 'positive'} integer")
    # default_lr reads only the width, which a pruned model keeps
    lr = FINETUNE_LR_SHARE * default_lr(SimpleNamespace(d_model=model.config.hidden_size)) if lr is None else lr
    if not (isinstance(lr, (int, float)) and 0 < lr < 1):
        raise ValueError(f"lr={lr!r} must be a learning rate in (0, 1), e.g. 1e-3")
    dev = resolve_device(device)
    amp_dtype = _resolve_precision(precision, dev)
    seq_len = int(model.config.max_position_embeddings)
    tokens_per_step = batch_size * seq_len
    per_token = model_flops_per_token(model, seq_len)
    total_steps = None
    if kind != "seconds":
        total_steps = int((value if kind == "tokens" else value / per_token) // tokens_per_step)
        if total_steps < 1:
            need = tokens_per_step * (per_token if kind == "flops" else 1)
            raise ValueError(f"{kind}={value:.3g} is too small for one step of batch_size={batch_size} x "
                             f"seq_len={seq_len}: that needs {need:.3g} {kind}")

    model.to(dev)
    val_rows = corpus.val_batch(eval_sequences, seq_len)
    before = mean_loss(model, val_rows)
    masks = [(w, keep.to(dev)) for w, keep in _masks(model)]
    hooks = [w.register_hook(lambda g, keep=keep: g * keep) for w, keep in masks]
    model.train()
    model.set_attn_implementation(_training_attention(dev, amp_dtype))
    optimizer = _make_optimizer(model, lr, weight_decay, dev)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    batches = corpus.train_batches(batch_size, seq_len, seed)
    curve, step, elapsed, progress = [], 0, 0.0, 0.0
    try:
        while progress < 1.0:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(progress, lr, warmup, min_lr_ratio)
            t0 = time.perf_counter()
            loss = _train_step(next_token_loss, model, optimizer, scaler, next(batches), batch_size, dev,
                               amp_dtype, grad_clip)
            with torch.no_grad():
                for w, keep in masks:
                    w.mul_(keep)
            elapsed += time.perf_counter() - t0
            step += 1
            curve.append([step, step * tokens_per_step, loss])
            progress = step / total_steps if total_steps else min(1.0, elapsed / value)
    finally:
        for h in hooks:
            h.remove()
        model.set_attn_implementation("sdpa")
        model.to("cpu").eval()
    after = mean_loss(model, val_rows)
    add_record(model, {"step": "recover", "budget": {"kind": kind, "value": value}, "steps": step,
                       "tokens": step * tokens_per_step, "flops": step * tokens_per_step * per_token, "lr": lr,
                       "seed": seed, "train_s": elapsed, "val_loss_before": before, "val_loss_after": after,
                       "train_curve": curve})
    return model
