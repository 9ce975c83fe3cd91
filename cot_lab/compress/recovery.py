"""Recovery fine-tuning: train a pruned model a little more, under a budget, without letting pruned weights back.

It is `cl.train` itself (one training loop: the same recipe, evaluations, divergence check, OOM
fallback and store), started from the pruned model, with a `KeepZeros` hook. Pruned weights stay exactly zero: their gradients are masked (so
AdamW's moments never see them) and the mask is applied again after every step (so weight decay
and rounding cannot revive them either). Structurally pruned matrices need no mask: the removed
heads and neurons are gone from the shapes.
"""
from __future__ import annotations

import torch

from cot_lab.data.base import Corpus
from cot_lab.core.callbacks import Callback
from cot_lab.core.checkpoint import is_quantized
from cot_lab.core.config import config_of
from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES, evaluate_loss
from cot_lab.core.recipe import default_lr
from cot_lab.core.runs import RunStore
from cot_lab.core.training import train
from cot_lab.compress.record import add_record
from cot_lab.compress.targets import block_linears, check_model

# Of the from-scratch peak: the weights are already trained, large steps undo that. Measured after the recipe
# pilot's rule replaced the old one: a d_model-64 model pruned 50% (wanda) and recovered on 2e10 FLOPs gained
# 0.019, 0.016, 0.013 and 0.004 nats/token at shares 0.1, 0.2, 0.3 and 0.6 of that rule's rate.
FINETUNE_LR_SHARE = 0.1


class KeepZeros(Callback):
    """A trainer hook that keeps pruned weights at exactly zero: their gradients are masked before each
    optimizer step (so AdamW's moments and weight decay never move them) and the mask is applied again after."""

    def __init__(self, model):
        self.masks = _masks(model)

    def on_start(self, model) -> None:
        device = next(model.parameters()).device
        self.masks = [(w, keep.to(device)) for w, keep in self.masks]
        self.handles = [w.register_hook(lambda g, keep=keep: g * keep) for w, keep in self.masks]

    def on_step(self, state) -> None:
        with torch.no_grad():
            for w, keep in self.masks:
                w.mul_(keep)

    def on_end(self, run) -> None:
        for h in getattr(self, "handles", ()):
            h.remove()
        self.handles = []


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
            device=None, precision: str = "auto", eval_sequences: int = DEFAULT_EVAL_SEQUENCES,
            store: RunStore | None = None, progress: bool = False, callbacks=()):
    """Fine-tune a pruned `model` in place on `corpus` under one budget (FLOPs, tokens or seconds); returns it.

    The kit's one training loop (`cl.train` with `init=model`) with a hook that keeps the pruned weights
    at zero, so it gets the same evaluation curve, divergence check, OOM fallback and store. FLOPs are
    counted for the model's shape as it is now (`cl.flops_per_token(cl.config_of(model))`). lr=None:
    FINETUNE_LR_SHARE of `cl.default_lr` for the model's width. seed picks the training rows (default 1:
    other rows than a seed-0 training saw). Validation loss (nats/token) before and after, the curve and
    the cost go to the model's history.
    """
    check_model(model)
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus={corpus!r} must be a corpus from cl.load_corpus(...)")
    if is_quantized(model):
        raise ValueError("model is quantized; recover the pruned float model first, then quantize it")
    cfg = config_of(model)
    lr = FINETUNE_LR_SHARE * default_lr(cfg) if lr is None else lr
    before = evaluate_loss(model, corpus, n_sequences=eval_sequences)
    run = train(cfg, corpus, flops=flops, tokens=tokens, seconds=seconds, seed=seed, batch_size=batch_size, lr=lr,
                warmup=warmup, min_lr_ratio=min_lr_ratio, weight_decay=weight_decay, grad_clip=grad_clip,
                device=device, precision=precision, eval_sequences=eval_sequences, init=model,
                callbacks=[KeepZeros(model), *callbacks], store=store, progress=progress)
    if run.status != "ok":
        raise RuntimeError(f"recovery {run.status} after {run.steps} steps; the model holds the weights of that step")
    add_record(model, {"step": "recover", "budget": run.budget, "steps": run.steps, "tokens": run.tokens,
                       "flops": run.flops, "lr": lr, "seed": seed, "train_s": run.train_s, "run_id": run.run_id,
                       "val_loss_before": before, "val_loss_after": run.final_val_loss,
                       "train_curve": run.train_curve})
    return model
