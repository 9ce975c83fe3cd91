"""The budgeted trainer, the kit's one training loop: train a model under exactly one budget and return a Run.

Budgets are FLOPs, tokens or wall seconds. The recipe comes from `core/recipe.py`: AdamW (beta2 0.95,
weight decay 0.1, fused where the device has it), linear warmup then cosine decay to 10% of the peak
learning rate (Hoffmann et al. 2022, arXiv 2203.15556, Sec. 3 and App. B), gradient clipping at 1.0, bf16
autocast where the device runs it natively. The schedule is a function of the fraction of the budget
spent, so a time budget gets a proper cosine too. Fine-tuning (`init=`) and recovery after pruning
(`cl.recover`, a callback that keeps the zeros) run through the same loop: the same divergence check,
OOM fallback, evaluation curve and store.
"""
from __future__ import annotations

import math
import platform
import time
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cot_lab.core.accounting import flops_per_token
from cot_lab.core.callbacks import Callback, ProgressBar, TrainState
from cot_lab.core.checkpoint import weights_fingerprint
from cot_lab.core.config import ModelConfig, build_model, config_of
from cot_lab.data.base import Corpus
from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES, mean_loss
from cot_lab.core.interrupts import check_stop, interrupts_deferred, validate_stop
from cot_lab.core.device import autocast_dtype, device_name, precision_name, resolve_device
from cot_lab.core.recipe import default_lr, lr_at, make_optimizer
from cot_lab.core.runs import Run, RunStore, now_iso, run_key
from cot_lab.core.validate import fraction, integer, number

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EVAL_SHARE = 0.1  # evaluations may cost at most ~10% of the training FLOPs (a forward is 1/3 of a step)
MAX_EVALS = 20


def _check_budget(flops, tokens, seconds) -> tuple[str, float]:
    given = {k: v for k, v in (("flops", flops), ("tokens", tokens), ("seconds", seconds)) if v is not None}
    if len(given) != 1:
        raise ValueError(f"give exactly one budget: flops=, tokens= or seconds= (got {sorted(given) or 'none'})")
    kind, value = next(iter(given.items()))
    return kind, number(kind, value)


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


@dataclass(frozen=True)
class RunPlan:
    """Everything `train` decides before its first step: the validated settings, the budget and the run key."""

    cfg: ModelConfig
    kind: str                   # "flops" | "tokens" | "seconds"
    value: float                # the budget in that unit
    device: torch.device
    amp_dtype: torch.dtype | None
    precision: str              # "fp32" | "bf16" | "fp16"
    tokens_per_step: int
    flops_per_token: float      # training FLOPs per token (Chinchilla App. F count)
    total_steps: int | None     # None for a time budget
    hparams: dict
    spec: dict                  # what the key hashes
    key: str

    @property
    def budget(self) -> dict:
        return {"kind": self.kind, "value": self.value}


def plan_run(cfg: ModelConfig, corpus: Corpus, *, flops: float | None = None, tokens: float | None = None,
             seconds: float | None = None, seed: int = 0, batch_size: int = 16, lr: float | None = None,
             warmup: float = 0.05, min_lr_ratio: float = 0.1, weight_decay: float = 0.1, grad_clip: float = 1.0,
             device: str | torch.device | None = None, precision: str = "auto", compile: bool | str = "auto",
             micro_batch_size: int | None = None, eval_sequences: int = DEFAULT_EVAL_SEQUENCES,
             init_fingerprint: str | None = None) -> RunPlan:
    """Validate `train`'s arguments and work out the run without training it: steps, hyperparameters, run key.

    A panel calls this to look a setting up in the store (`store.get(plan.key)`) on every slider move.
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
    batch_size = integer("batch_size", batch_size, hint="sequences per optimizer step, e.g. 16")
    eval_sequences = integer("eval_sequences", eval_sequences, hint="validation rows, e.g. 128")
    seed = integer("seed", seed, low=0)
    if micro_batch_size is not None:
        micro_batch_size = integer("micro_batch_size", micro_batch_size, high=batch_size)
    lr = default_lr(cfg) if lr is None else number("lr", lr, high=1.0, high_open=True, hint="e.g. 1e-3")
    warmup = fraction("warmup", warmup, hint="a fraction of the budget, e.g. 0.05")
    min_lr_ratio = number("min_lr_ratio", min_lr_ratio, low=0.0, low_open=False, high=1.0)
    if compile not in (True, False, "auto"):
        raise ValueError(f"compile={compile!r} must be True, False or 'auto'")
    dev = resolve_device(device)
    amp_dtype = _resolve_precision(precision, dev)

    tokens_per_step = batch_size * cfg.seq_len
    per_token = flops_per_token(cfg, "chinchilla")
    total_steps = budget_flops = None  # a time budget fixes neither in advance
    if kind != "seconds":
        budget_tokens = value if kind == "tokens" else value / per_token
        budget_flops = budget_tokens * per_token
        total_steps = int(budget_tokens // tokens_per_step)
        if total_steps < 1:
            need = tokens_per_step * (per_token if kind == "flops" else 1)
            raise ValueError(
                f"{kind}={value:.3g} is too small for one step: one step of batch_size={batch_size} x "
                f"seq_len={cfg.seq_len} needs {need:.3g} {kind}; raise {kind} to at least that or lower batch_size"
            )
    hparams = dict(attention=_training_attention(dev, amp_dtype), compiled=_use_compile(compile, dev, budget_flops, value),
                   seed=seed, batch_size=batch_size, lr=lr, warmup=warmup, min_lr_ratio=min_lr_ratio,
                   weight_decay=weight_decay, grad_clip=grad_clip, eval_sequences=eval_sequences)
    if init_fingerprint is not None:  # fine-tuning: the starting weights decide the result too
        hparams["init"] = init_fingerprint
    if micro_batch_size is not None:
        hparams["micro_batch_size"] = micro_batch_size
    spec = dict(config=cfg.to_dict(), corpus=corpus.fingerprint, budget={"kind": kind, "value": value},
                hparams=hparams, precision=precision_name(amp_dtype), device=dev.type)
    # micro_batch_size changes only how a step is split, not its result: not part of the key
    keyed = {**spec, "hparams": {k: v for k, v in hparams.items() if k != "micro_batch_size"}}
    return RunPlan(cfg, kind, value, dev, amp_dtype, precision_name(amp_dtype), tokens_per_step, per_token,
                   total_steps, hparams, spec, run_key(keyed))


def train(cfg: ModelConfig, corpus: Corpus, *, flops: float | None = None, tokens: float | None = None,
          seconds: float | None = None, seed: int = 0, batch_size: int = 16, lr: float | None = None,
          warmup: float = 0.05, min_lr_ratio: float = 0.1, weight_decay: float = 0.1, grad_clip: float = 1.0,
          device: str | torch.device | None = None, precision: str = "auto", compile: bool | str = "auto",
          micro_batch_size: int | None = None, eval_sequences: int = DEFAULT_EVAL_SEQUENCES,
          callbacks: list[Callback] | tuple = (), store: RunStore | None = None, progress: bool = True,
          init=None, stop=None) -> Run:
    """Train `build_model(cfg)` on `corpus` under one budget (FLOPs, tokens or wall seconds); returns a Run.

    FLOPs are counted with `flops_per_token(cfg, "chinchilla")`. batch_size is in sequences of
    cfg.seq_len tokens; lr=None takes `default_lr(cfg)`; warmup is a fraction of the budget.
    compile: True/False, or "auto" = `torch.compile` when the budget is large enough to repay the
    compile time (see `COMPILE_AUTO_FLOPS`). With `store`, a run with the same key returns at once.
    init: a model of shape `cfg` to train further, in place, instead of a fresh one (fine-tuning:
    `cl.recover` passes a pruned model and a callback that keeps its zeros).
    stop: a `threading.Event` a panel's Stop button sets; the run then ends as the notebook's Stop
    (SIGINT) ends it: within a step, kept in the store marked "interrupted".
    """
    stop = validate_stop(stop)
    fingerprint = None
    if init is not None:
        init_cfg = config_of(init)
        if init_cfg != cfg:
            raise ValueError(f"init is a model of shape {init_cfg}, not cfg={cfg}; pass cfg=cl.config_of(init)")
        fingerprint = weights_fingerprint(init)
    plan = plan_run(cfg, corpus, flops=flops, tokens=tokens, seconds=seconds, seed=seed, batch_size=batch_size, lr=lr,
                    warmup=warmup, min_lr_ratio=min_lr_ratio, weight_decay=weight_decay, grad_clip=grad_clip,
                    device=device, precision=precision, compile=compile, micro_batch_size=micro_batch_size,
                    eval_sequences=eval_sequences, init_fingerprint=fingerprint)
    callbacks = list(callbacks) + ([ProgressBar(f"{cfg.d_model}x{cfg.n_layer}")] if progress else [])
    if store is not None:
        cached = store.get(plan.key)
        if cached is not None and cached.status == "ok":
            if init is not None:  # fine-tuning in place: the caller's model must end up as the stored one
                init.load_state_dict(store.load_model(cached.run_id).state_dict())
                cached._model = init
            for cb in callbacks:
                cb.on_end(cached)
            return cached
    def make_model():
        if init is not None:
            return init
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
            torch.manual_seed(seed)
            return build_model(cfg)

    return _run(plan, corpus, make_model, callbacks, store, compile, stop)


def _run(plan: RunPlan, corpus: Corpus, make_model, callbacks: list, store: RunStore | None, compile, stop) -> Run:
    """The training loop: steps until the budget is spent, evaluations, divergence, OOM fallback, Stop, the store.

    Everything after the run record exists sits inside one `try`, so a Stop at any moment (building the
    model, making the validation rows, a callback, an evaluation) ends as a stored, "interrupted" run.
    """
    cfg, dev, amp_dtype, hparams = plan.cfg, plan.device, plan.amp_dtype, plan.hparams
    value, tokens_per_step, flops_per_tok, total_steps = (plan.value, plan.tokens_per_step,
                                                                plan.flops_per_token, plan.total_steps)
    lr, warmup, min_lr_ratio, grad_clip = hparams["lr"], hparams["warmup"], hparams["min_lr_ratio"], hparams["grad_clip"]
    run = Run(run_id=plan.key, config=cfg, corpus=corpus.name, corpus_fingerprint=corpus.fingerprint,
              budget=plan.budget, hparams=dict(hparams), entropy=corpus.entropy_for(cfg.seq_len)[0], device=dev.type,
              device_name=device_name(dev), precision=plan.precision, versions=versions(), created_at=now_iso())
    micro = hparams.get("micro_batch_size") or hparams["batch_size"]
    state = TrainState(0, total_steps, 0, 0.0, float("nan"), 0.0, 0.0, 0.0)
    start = time.perf_counter()
    model = None
    try:
        model = make_model()
        check_stop(stop)
        model.to(dev).train()
        model.set_attn_implementation(hparams["attention"])
        loss_fn = torch.compile(next_token_loss, dynamic=False) if hparams["compiled"] else next_token_loss
        optimizer = make_optimizer(model, lr, hparams["weight_decay"], dev)
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        val_rows = corpus.val_batch(hparams["eval_sequences"], cfg.seq_len)
        batches = corpus.train_batches(hparams["batch_size"], cfg.seq_len, hparams["seed"])
        n_evals = max(1, min(MAX_EVALS, int(EVAL_SHARE * 3 * tokens_per_step * (total_steps or 1000) / val_rows.numel())))
        next_eval = 1.0 / (n_evals + 1)
        for cb in callbacks:
            cb.on_start(model)
        while state.progress < 1.0:
            check_stop(stop)
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
            check_stop(stop)
            _evaluate(model, val_rows, state, run, callbacks)
    except KeyboardInterrupt:
        run.status = "interrupted"  # the notebook's Stop button: keep what was trained, marked as partial
    # From here on a second Stop waits until the record and the weights are written: the store stays consistent.
    with interrupts_deferred():
        run.steps, run.tokens, run.flops, run.train_s = state.step, state.tokens, state.flops, state.elapsed_s
        run.wall_s = time.perf_counter() - start
        run.final_val_loss = run.val_curve[-1][2] if run.val_curve and run.status == "ok" else float("nan")
        run.hparams["micro_batch_size"] = micro
        if model is not None:
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


def versions() -> dict:
    import transformers

    from cot_lab import __version__

    return {"cot_lab": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
