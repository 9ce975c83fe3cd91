"""The budgeted trainer: train a model under exactly one budget (FLOPs, tokens or seconds) and return a Run.

Recipe (the small-scale defaults of the scaling-law literature, REFERENCE.md Sec. 5): AdamW
(beta2 0.95, weight decay 0.1, fused where the device has it), linear warmup then cosine decay to
10% of the peak learning rate (Hoffmann et al. 2022 decay 10x), gradient clipping at 1.0, bf16
autocast where the device runs it natively. The schedule is a function of the fraction of the
budget spent, so a time budget gets a proper cosine too.
"""
from __future__ import annotations

import math
import platform
import time
import warnings

import torch
import torch.nn.functional as F

from .accounting import flops_per_token
from .callbacks import Callback, ProgressBar, TrainState
from .config import ModelConfig, build_model
from .data.base import Corpus
from .evaluate import DEFAULT_EVAL_SEQUENCES, mean_loss
from .hardware import autocast_dtype, device_name, precision_name, resolve_device
from .runs import Run, RunStore, now_iso, run_key

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EVAL_SHARE = 0.1  # evaluations may cost at most ~10% of the training FLOPs (a forward is 1/3 of a step)
MAX_EVALS = 20


def default_lr(cfg: ModelConfig) -> float:
    """Peak learning rate for `cfg`: 3e-3 at d_model 128, scaled as 1/d_model (muP-style width rule), clipped to [3e-4, 1e-2]."""
    return min(1e-2, max(3e-4, 3e-3 * 128 / cfg.d_model))


def lr_at(progress: float, peak: float, warmup: float, min_ratio: float) -> float:
    """Learning rate at `progress` (fraction of budget spent, 0..1): linear warmup, then cosine to min_ratio*peak."""
    if progress < warmup:
        return peak * max(progress, 1e-3) / warmup
    decay = min(1.0, (progress - warmup) / max(1e-12, 1.0 - warmup))
    return peak * (min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * decay)))


def _check_budget(flops, tokens, seconds) -> tuple[str, float]:
    given = {k: v for k, v in (("flops", flops), ("tokens", tokens), ("seconds", seconds)) if v is not None}
    if len(given) != 1:
        raise ValueError(f"give exactly one budget: flops=, tokens= or seconds= (got {sorted(given) or 'none'})")
    kind, value = next(iter(given.items()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{kind}={value!r} must be a positive finite number")
    return kind, float(value)


def _resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not known; use one of {PRECISIONS}")
    if precision == "auto":
        return autocast_dtype(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' needs a CUDA device (got {device.type}); use 'bf16' or 'fp32'")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _make_optimizer(model, lr: float, weight_decay: float, device: torch.device):
    # Decay matrices only: norms gains and embeddings-as-lookups are not regularised (nanoGPT's rule: dim >= 2).
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are missing on some devices (e.g. older MPS builds)
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), eps=1e-8)


def train(
    cfg: ModelConfig,
    corpus: Corpus,
    *,
    flops: float | None = None,
    tokens: float | None = None,
    seconds: float | None = None,
    seed: int = 0,
    batch_size: int = 16,
    lr: float | None = None,
    warmup: float = 0.05,
    min_lr_ratio: float = 0.1,
    weight_decay: float = 0.1,
    grad_clip: float = 1.0,
    device: str | torch.device | None = None,
    precision: str = "auto",
    compile: bool | str = "auto",
    micro_batch_size: int | None = None,
    eval_sequences: int = DEFAULT_EVAL_SEQUENCES,
    callbacks: list[Callback] | tuple = (),
    store: RunStore | None = None,
    progress: bool = True,
) -> Run:
    """Train a fresh `build_model(cfg)` on `corpus` under one budget (FLOPs, tokens or wall seconds); returns a Run.

    FLOPs are counted with `flops_per_token(cfg, "chinchilla")`. batch_size is in sequences of
    cfg.seq_len tokens; lr=None takes `default_lr(cfg)`; warmup is a fraction of the budget.
    compile: True/False, or "auto" = `torch.compile` when the budget is large enough to repay the
    compile time (see `COMPILE_AUTO_FLOPS`). With `store`, a run with the same key returns at once.
    """
    if not isinstance(cfg, ModelConfig):
        raise ValueError(f"cfg must be a cot_lab.ModelConfig (got {type(cfg).__name__})")
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus must be a cot_lab corpus from cl.load_corpus(...) (got {type(corpus).__name__})")
    if cfg.vocab_size < corpus.vocab_size:
        raise ValueError(
            f"cfg.vocab_size={cfg.vocab_size} is smaller than the corpus's vocab_size={corpus.vocab_size}; "
            f"use cfg.replace(vocab_size={corpus.vocab_size})"
        )
    kind, value = _check_budget(flops, tokens, seconds)
    for name, v in (("batch_size", batch_size), ("eval_sequences", eval_sequences)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}={v!r} must be a positive integer")
    if micro_batch_size is not None and (not isinstance(micro_batch_size, int) or not 0 < micro_batch_size <= batch_size):
        raise ValueError(f"micro_batch_size={micro_batch_size!r} must be an integer in 1..batch_size={batch_size}")
    lr = default_lr(cfg) if lr is None else lr
    if not (isinstance(lr, (int, float)) and 0 < lr < 1):
        raise ValueError(f"lr={lr!r} must be a learning rate in (0, 1), e.g. 1e-3")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup={warmup!r} must be a fraction of the budget in [0, 1)")
    if not 0 <= min_lr_ratio <= 1:
        raise ValueError(f"min_lr_ratio={min_lr_ratio!r} must be in [0, 1]")
    if compile not in (True, False, "auto"):
        raise ValueError(f"compile={compile!r} must be True, False or 'auto'")
    dev = resolve_device(device)
    amp_dtype = _resolve_precision(precision, dev)
    precision_used = precision_name(amp_dtype)

    tokens_per_step = batch_size * cfg.seq_len
    flops_per_tok = flops_per_token(cfg, "chinchilla")
    total_steps = budget_flops = None  # a time budget fixes neither in advance
    if kind != "seconds":
        budget_tokens = value if kind == "tokens" else value / flops_per_tok
        budget_flops = budget_tokens * flops_per_tok
        total_steps = int(budget_tokens // tokens_per_step)
        if total_steps < 1:
            need = tokens_per_step * (flops_per_tok if kind == "flops" else 1)
            raise ValueError(
                f"{kind}={value:.3g} is too small for one step: one step of batch_size={batch_size} x "
                f"seq_len={cfg.seq_len} needs {need:.3g} {kind}; raise {kind} to at least that or lower batch_size"
            )

    hparams = dict(attention=_training_attention(dev, amp_dtype), compiled=_use_compile(compile, dev, budget_flops, value),
                   seed=seed, batch_size=batch_size, lr=lr, warmup=warmup, min_lr_ratio=min_lr_ratio,
                   weight_decay=weight_decay, grad_clip=grad_clip, eval_sequences=eval_sequences)
    budget = {"kind": kind, "value": value}
    key = run_key(dict(config=cfg.to_dict(), corpus=corpus.fingerprint, budget=budget, hparams=hparams,
                       precision=precision_used, device=dev.type))
    callbacks = list(callbacks) + ([ProgressBar(f"{cfg.d_model}x{cfg.n_layer}")] if progress else [])
    if store is not None:
        cached = store.get(key)
        if cached is not None and cached.status == "ok":
            for cb in callbacks:
                cb.on_end(cached)
            return cached

    run = Run(run_id=key, config=cfg, corpus=corpus.name, corpus_fingerprint=corpus.fingerprint, budget=budget,
              hparams=hparams, entropy=corpus.entropy_for(cfg.seq_len)[0], device=dev.type,
              device_name=device_name(dev),
              precision=precision_used, versions=_versions(), created_at=now_iso())
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = build_model(cfg)
    model.to(dev).train()
    model.set_attn_implementation(hparams["attention"])
    loss_fn = torch.compile(next_token_loss, dynamic=False) if hparams["compiled"] else next_token_loss
    optimizer = _make_optimizer(model, lr, weight_decay, dev)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    val_rows = corpus.val_batch(eval_sequences, cfg.seq_len)
    batches = corpus.train_batches(batch_size, cfg.seq_len, seed)

    n_evals = max(1, min(MAX_EVALS, int(EVAL_SHARE * 3 * tokens_per_step * (total_steps or 1000) / val_rows.numel())))
    next_eval = 1.0 / (n_evals + 1)
    micro = micro_batch_size or batch_size
    state = TrainState(0, total_steps, 0, 0.0, float("nan"), 0.0, 0.0, 0.0)
    start = time.perf_counter()
    try:
        while state.progress < 1.0:
            state.lr = lr_at(state.progress, lr, warmup, min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = state.lr
            t0 = time.perf_counter()  # data time counts: a slow loader is the trainer's problem too
            batch = next(batches)
            while True:
                try:
                    loss = _train_step(loss_fn, model, optimizer, scaler, batch, micro, dev, amp_dtype, grad_clip)
                    break
                except Exception as error:
                    optimizer.zero_grad(set_to_none=True)
                    if _is_oom(error) and micro > 1:
                        if dev.type == "cuda":
                            torch.cuda.empty_cache()
                        micro //= 2  # same effective batch, split into more accumulation steps
                    elif loss_fn is not next_token_loss and compile == "auto" and state.step == 0:
                        warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); training uncompiled")
                        loss_fn = next_token_loss
                    else:
                        raise
            state.elapsed_s += time.perf_counter() - t0
            state.step += 1
            state.tokens += tokens_per_step
            state.flops = state.tokens * flops_per_tok
            state.loss = loss
            state.progress = state.step / total_steps if total_steps else min(1.0, state.elapsed_s / value)
            run.train_curve.append([state.step, state.tokens, loss])
            if not math.isfinite(loss):
                run.status = "diverged"
                break
            for cb in callbacks:
                cb.on_step(state)
            if state.progress >= next_eval and state.progress < 1.0:
                next_eval += 1.0 / (n_evals + 1)
                _evaluate(model, val_rows, state, run, callbacks)
        if run.status == "ok":
            _evaluate(model, val_rows, state, run, callbacks)
    except KeyboardInterrupt:
        run.status = "interrupted"  # the notebook's Stop button: keep what was trained, marked as partial
    run.steps, run.tokens, run.flops, run.train_s = state.step, state.tokens, state.flops, state.elapsed_s
    run.wall_s = time.perf_counter() - start
    run.final_val_loss = run.val_curve[-1][2] if run.val_curve and run.status == "ok" else float("nan")
    run.hparams["micro_batch_size"] = micro
    model.to("cpu").eval()
    model.set_attn_implementation("sdpa")
    run._model = model
    if store is not None:
        store.save(run, model if run.status != "diverged" else None)
    for cb in callbacks:
        cb.on_end(run)
    return run


# Budgets above which "auto" compiles: on a 2-core CPU, compiling took 30-60 s the first time (4 s from
# inductor's cache) and then ran 1.4-1.6x faster (benchmarks/trainer_throughput.py), so it pays from a few
# minutes of training. A threshold in FLOPs, not seconds, keeps the choice (and the run key) machine-independent.
COMPILE_AUTO_FLOPS = {"cpu": 3e13, "cuda": 3e16}


def _use_compile(compile: bool | str, dev: torch.device, budget_flops: float | None, value: float) -> bool:
    if compile != "auto":
        return bool(compile)
    if dev.type not in COMPILE_AUTO_FLOPS or (dev.type == "cpu" and not _has_cxx_compiler()):
        return False  # inductor needs a C++ compiler on CPU; MPS support is experimental
    if budget_flops is None:  # a time budget
        return value >= 300
    return budget_flops >= COMPILE_AUTO_FLOPS[dev.type]


def _has_cxx_compiler() -> bool:
    import shutil

    return any(shutil.which(c) for c in ("g++", "c++", "clang++"))


def _training_attention(dev: torch.device, amp_dtype) -> str:
    """Attention kernel for training: SDPA, except eager (matmul + softmax) for bf16 on CPU.

    Measured on a 2-core AVX-512-bf16 EPYC (benchmarks/trainer_throughput.py): the CPU flash-attention
    kernel's bf16 backward took 35% of a 2M-param step; eager attention in bf16 was 1.2-2x faster
    per step, while in fp32 SDPA was faster. Results differ only by summation order.
    """
    return "eager" if dev.type == "cpu" and amp_dtype == torch.bfloat16 else "sdpa"


def next_token_loss(model, rows: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats/token) of predicting rows[:, 1:] from rows[:, :-1]; rows [b, T+1]."""
    logits = model(input_ids=rows[:, :-1]).logits  # [b, T, vocab]
    return F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten())


def _train_step(loss_fn, model, optimizer, scaler, batch, micro, dev, amp_dtype, grad_clip) -> float:
    """One optimizer step over `batch` [B, T+1], accumulated over micro-batches of `micro` rows; returns mean loss."""
    batch = batch.to(dev, non_blocking=True)
    n_rows = batch.shape[0]
    total = torch.zeros((), device=dev)
    for start in range(0, n_rows, micro):
        chunk = batch[start:start + micro]
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(model, chunk)  # compiled together with the loss when compiling
        scaled = loss * (chunk.shape[0] / n_rows)
        (scaler.scale(scaled) if scaler else scaled).backward()
        total += scaled.detach()
    if scaler:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(total)


def _evaluate(model, val_rows, state: TrainState, run: Run, callbacks) -> None:
    val_loss = mean_loss(model, val_rows)
    run.val_curve.append([state.step, state.tokens, val_loss])
    for cb in callbacks:
        cb.on_eval(state, val_loss)


def _versions() -> dict:
    import transformers

    from . import __version__

    return {"cot_lab": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
