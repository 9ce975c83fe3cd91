"""The budgeted trainer, the kit's one training loop: train a model under exactly one budget and return a Run.

Budgets are FLOPs, tokens or wall seconds. The recipe comes from `core/recipe.py`: AdamW (beta2 from the
recipe pilot, weight decay 0.1 on the attention and MLP matrices, fused where the device has it), linear warmup then cosine decay to 10% of the peak
learning rate (Hoffmann et al. 2022, arXiv 2203.15556, Sec. 3 and App. B), gradient clipping at 1.0, bf16
autocast where the device runs it natively. The schedule is a function of the fraction of the budget
spent, so a time budget gets a proper cosine too. Fine-tuning (`init=`) and recovery after pruning
(`cl.recover`, a callback that keeps the zeros) run through the same loop: the same divergence check,
OOM fallback, evaluation curve and store.

The loop trains a *group*: one run, or several runs of one shape that differ only in seed and learning
rate (`train_many`), as one batched computation (`core/stacked_llama.py`: every weight [G, ...], every
matmul batched). Each member keeps its own model, optimizer, data order, gradient clipping, curves and
store record, so a member's result is the run it would be alone (`tests/test_train_many.py`).
"""
from __future__ import annotations

import math
import platform
import time
import warnings
from dataclasses import dataclass

import torch

from cot_lab.core import stacked_llama
from cot_lab.core.callbacks import Callback, ProgressBar, TrainState
from cot_lab.core.checkpoint import weights_fingerprint
from cot_lab.core.config import ModelConfig, build_model, config_of
from cot_lab.core.device import device_name
from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES, mean_loss
from cot_lab.core.mup import apply_mup_init
from cot_lab.core.objective import moe_objective, next_token_loss
from cot_lab.core.interrupts import check_stop, interrupts_deferred, validate_stop
from cot_lab.core.plan import COMPILE_AUTO_FLOPS, RunPlan, group_key, plan_run  # noqa: F401  (re-exported)
from cot_lab.core.recipe import lr_at, make_optimizer
from cot_lab.core.runs import Run, RunStore, now_iso
from cot_lab.data.base import Corpus

# Evaluations (the final one included) may cost at most ~10% of the training FLOPs; a forward is 1/3 of a step.
EVAL_SHARE = 0.1
MAX_EVALS = 20
EVAL_ROWS_PER_CHUNK = 64  # validation rows per forward: large enough that per-op overhead stops mattering


def train(cfg: ModelConfig, corpus: Corpus, *, flops: float | None = None, tokens: float | None = None,
          seconds: float | None = None, seed: int = 0, batch_size: int = 16, lr: float | None = None,
          warmup: float = 0.05, min_lr_ratio: float = 0.1, weight_decay: float = 0.1, grad_clip: float = 1.0, beta2: float | None = None,
          device: str | torch.device | None = None, precision: str = "auto", compile: bool | str = "auto",
          micro_batch_size: int | None = None, eval_sequences: int = DEFAULT_EVAL_SEQUENCES,
          callbacks: list[Callback] | tuple = (), store: RunStore | None = None, progress: bool = True,
          init=None, stop=None, mup_base_width: int | None = None, aux_loss_coef: float | None = None) -> Run:
    """Train `build_model(cfg)` on `corpus` under one budget (FLOPs, tokens or wall seconds); returns a Run.

    FLOPs are counted with `flops_per_token(cfg, "chinchilla")`. batch_size is in sequences of
    cfg.seq_len tokens; lr=None takes `default_lr(cfg)`; warmup is a fraction of the budget.
    compile: True/False, or "auto" (`COMPILE_AUTO_FLOPS`). With `store`, a run with the same key returns at once.
    init: a model of shape `cfg` to train further, in place, instead of a fresh one (fine-tuning:
    `cl.recover` passes a pruned model and a callback that keeps its zeros).
    stop: a `threading.Event` a panel's Stop button sets; the run then ends as the notebook's Stop
    (SIGINT) ends it: within a step, kept in the store marked "interrupted".
    mup_base_width: None, the standard parametrisation; a width, muP with that width as its base
    (`core/mup.py`: hidden-matrix init and learning rate scaled by width, output logits by 1/width).
    aux_loss_coef: MoE only, the weight of the router's balance loss (None: 1e-2, `core/objective.py`).
    """
    stop = validate_stop(stop)
    fingerprint = None
    if init is not None:
        init_cfg = config_of(init)
        if init_cfg != cfg:
            raise ValueError(f"init is a model of shape {init_cfg}, not cfg={cfg}; pass cfg=cl.config_of(init)")
        fingerprint = weights_fingerprint(init)
    plan = plan_run(cfg, corpus, flops=flops, tokens=tokens, seconds=seconds, seed=seed, batch_size=batch_size, lr=lr,
                    warmup=warmup, min_lr_ratio=min_lr_ratio, weight_decay=weight_decay, grad_clip=grad_clip, beta2=beta2,
                    device=device, precision=precision, compile=compile, micro_batch_size=micro_batch_size,
                    eval_sequences=eval_sequences, init_fingerprint=fingerprint, mup_base_width=mup_base_width,
                    aux_loss_coef=aux_loss_coef)
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
    make = (lambda: init) if init is not None else _fresh_model(cfg, seed, plan.hparams.get("mup_base_width"))
    member = _Member(plan, make, callbacks)
    return _run_group([member], corpus, store, compile, stop)[0]


def train_many(cfg: ModelConfig, corpus: Corpus, *, seeds=(0,), lrs=None, store: RunStore | None = None,
               callbacks=None, progress: bool = True, stop=None, compile: bool | str = "auto", **train_kwargs) -> list[Run]:
    """Several runs of one shape and budget, trained together as one batched computation; one Run per member.

    seeds: a list of seeds; lrs: None (every member `default_lr(cfg)`), one learning rate, or a list as long
    as `seeds` (member i trains with seeds[i], lrs[i]). Each member is stored as its own run, under the key
    `cl.train` would give it, and equals that run trained alone (fp32: the same loss to ~1e-6). callbacks:
    None, or one list per member. Runs already in `store` come back at once; only the others train.
    Dense models only (MoE members are trained one after another). Other keyword arguments: as `cl.train`.
    """
    stop = validate_stop(stop)
    if "init" in train_kwargs:
        raise ValueError("init= is not supported by train_many; fine-tune one model with cl.train(init=...)")
    seeds = list(seeds) if hasattr(seeds, "__iter__") else [seeds]
    lrs = [lrs] * len(seeds) if lrs is None or not hasattr(lrs, "__iter__") else list(lrs)
    if not seeds or len(lrs) != len(seeds):
        raise ValueError(f"seeds={seeds!r} and lrs={lrs!r}: give at least one seed, and one lr or one per seed")
    callbacks = [[] for _ in seeds] if callbacks is None else [list(c) for c in callbacks]
    if len(callbacks) != len(seeds):
        raise ValueError(f"callbacks: give one list per member ({len(seeds)}), or None")
    plans = [plan_run(cfg, corpus, seed=seed, lr=lr, compile=compile, **train_kwargs) for seed, lr in zip(seeds, lrs)]
    if len({p.key for p in plans}) != len(plans):
        raise ValueError(f"seeds={seeds!r} with lrs={lrs!r} repeat a run; every (seed, lr) pair must differ")
    runs: list[Run | None] = [None] * len(plans)
    members = []
    for i, plan in enumerate(plans):
        cached = store.get(plan.key) if store is not None else None
        if cached is not None and cached.status == "ok":
            runs[i] = cached
            for cb in callbacks[i]:
                cb.on_end(cached)
        else:
            bar = [ProgressBar(f"{cfg.d_model}x{cfg.n_layer} seed {plan.hparams['seed']}")] if progress else []
            members.append((i, _Member(plan, _fresh_model(cfg, plan.hparams["seed"], plan.hparams.get("mup_base_width")),
                                           callbacks[i] + bar)))
    if members:
        groups = [members] if cfg.arch == "dense" else [[m] for m in members]
        for group in groups:
            for (i, _), run in zip(group, _run_group([m for _, m in group], corpus, store, compile, stop)):
                runs[i] = run
            if any(runs[i].status == "interrupted" for i, _ in group):
                break
    return [r for r in runs if r is not None]


def _fresh_model(cfg: ModelConfig, seed: int, mup_base_width: int | None = None):
    def make():
        with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
            torch.manual_seed(seed)
            model = build_model(cfg)
        if mup_base_width is not None:
            apply_mup_init(model, mup_base_width)
        return model
    return make


@dataclass
class _Member:
    """One run of a group: its plan, how to make its model, its callbacks, and what the loop keeps for it."""

    plan: RunPlan
    make_model: object
    callbacks: list
    run: Run | None = None
    state: TrainState | None = None
    model: object = None
    optimizer: object = None
    batches: object = None
    active: bool = True  # False once it has diverged


def _run_group(members: list[_Member], corpus: Corpus, store: RunStore | None, compile, stop) -> list[Run]:
    """The training loop over a group: steps until the budget is spent, evaluations, divergence, OOM fallback,
    Stop, the store.

    Everything after the run records exist sits inside one `try`, so a Stop at any moment (building the
    models, making the validation rows, a callback, an evaluation) ends as stored, "interrupted" runs.
    """
    first = members[0].plan
    cfg, dev, amp_dtype, hparams = first.cfg, first.device, first.amp_dtype, first.hparams
    if len({group_key(m.plan) for m in members}) != 1:
        raise ValueError("runs trained as one group must differ only in seed and learning rate")
    tokens_per_step, flops_per_tok, total_steps = first.tokens_per_step, first.flops_per_token, first.total_steps
    for m in members:
        m.run = Run(run_id=m.plan.key, config=cfg, corpus=corpus.name, corpus_fingerprint=corpus.fingerprint,
                    budget=m.plan.budget, hparams=dict(m.plan.hparams), entropy=corpus.entropy_for(cfg.seq_len)[0],
                    device=dev.type, device_name=device_name(dev), precision=first.precision, versions=versions(),
                    created_at=now_iso())
        m.state = TrainState(0, total_steps, 0, 0.0, float("nan"), 0.0, 0.0, 0.0)
    micro = hparams.get("micro_batch_size") or hparams["batch_size"]
    step, elapsed_s, progress = 0, 0.0, 0.0
    start = time.perf_counter()
    try:
        for m in members:
            m.model = m.make_model()
            check_stop(stop)
        models = [m.model for m in members]
        for model in models:
            model.to(dev).train()
            model.set_attn_implementation(hparams["attention"])
        loss_fn = _group_loss(models, cfg, hparams["attention"], hparams.get("aux_loss_coef"))
        if hparams["compiled"]:
            loss_fn = torch.compile(loss_fn, dynamic=False)
        for m in members:
            m.optimizer = make_optimizer(m.model, m.plan.hparams["lr"], hparams["weight_decay"], dev, hparams["beta2"],
                                         hparams.get("mup_base_width"))
            m.batches = corpus.train_batches(hparams["batch_size"], cfg.seq_len, m.plan.hparams["seed"])
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        val_rows = corpus.val_batch(hparams["eval_sequences"], cfg.seq_len)
        n_evals = _intermediate_evals(tokens_per_step * (total_steps or 1000), val_rows.numel())
        next_eval = 1.0 / (n_evals + 1)
        for m in members:
            for cb in m.callbacks:
                cb.on_start(m.model)
        while progress < 1.0:
            check_stop(stop)
            for m in members:
                m.state.lr = lr_at(progress, m.plan.hparams["lr"], hparams["warmup"], hparams["min_lr_ratio"])
                for group in m.optimizer.param_groups:
                    group["lr"] = m.state.lr * group["lr_scale"]
            t0 = time.perf_counter()  # data time counts: a slow loader is the trainer's problem too
            batch = torch.stack([next(m.batches) for m in members])  # [G, B, T+1]
            while True:
                try:
                    losses = _train_step(loss_fn, members, scaler, batch, micro, dev, amp_dtype, hparams["grad_clip"])
                    break
                except Exception as error:
                    for m in members:
                        m.optimizer.zero_grad(set_to_none=True)
                    if _is_oom(error) and micro > 1:
                        if dev.type == "cuda":
                            torch.cuda.empty_cache()
                        micro //= 2  # same effective batch, split into more accumulation steps
                    elif hparams["compiled"] and compile == "auto" and step == 0:
                        warnings.warn(f"torch.compile failed ({type(error).__name__}: {error}); training uncompiled")
                        hparams = {**hparams, "compiled": False}
                        loss_fn = _group_loss(models, cfg, hparams["attention"], hparams.get("aux_loss_coef"))
                    else:
                        raise
            elapsed_s += time.perf_counter() - t0
            step += 1
            progress = step / total_steps if total_steps else min(1.0, elapsed_s / first.value)
            for m, loss in zip(members, losses):
                if m.active:
                    _record_step(m, step, elapsed_s, progress, loss, tokens_per_step, flops_per_tok)
            if not any(m.active for m in members):
                break
            if progress >= next_eval and progress < 1.0:
                next_eval += 1.0 / (n_evals + 1)
                _evaluate(members, cfg, val_rows)
        check_stop(stop)
        _evaluate(members, cfg, val_rows)
    except KeyboardInterrupt:
        for m in members:  # the notebook's Stop button: keep what was trained, marked as partial
            if m.run.status == "ok":
                m.run.status = "interrupted"
    # From here on a second Stop waits until the records and the weights are written: the store stays consistent.
    with interrupts_deferred():
        # A member's seconds are its share of the group's: a group's runs add up to its wall time, as runs one
        # after another do, and FLOPs / wall_s is what each run cost (the speed an ETA is calibrated on).
        share = 1.0 / len(members)
        wall_s = time.perf_counter() - start
        for m in members:
            run, state = m.run, m.state
            run.steps, run.tokens, run.flops = state.step, state.tokens, state.flops
            run.train_s, run.wall_s = state.elapsed_s * share, wall_s * share
            run.final_val_loss = run.val_curve[-1][2] if run.val_curve and run.status == "ok" else float("nan")
            run.hparams["micro_batch_size"] = micro  # neither is part of the key: they change how, not what
            run.hparams["group_size"] = len(members)
            if m.model is not None:
                m.model.to("cpu").eval()
                m.model.set_attn_implementation("sdpa")
            run._model = m.model
            if store is not None:
                store.save(run, m.model if run.status != "diverged" else None)
    for m in members:
        for cb in m.callbacks:
            cb.on_end(m.run)
    return [m.run for m in members]


def _intermediate_evals(train_tokens: float, val_tokens: int) -> int:
    """Evaluations during a run, besides the final one, so that all of them together stay within EVAL_SHARE."""
    affordable = int(EVAL_SHARE * 3 * train_tokens / val_tokens)  # evaluations the share pays for
    return max(0, min(MAX_EVALS, affordable - 1))


def _record_step(m: _Member, step: int, elapsed_s: float, progress: float, loss: float, tokens_per_step: int,
                 flops_per_tok: float) -> None:
    state = m.state
    state.step, state.elapsed_s, state.progress, state.loss = step, elapsed_s, progress, loss
    state.tokens += tokens_per_step
    state.flops = state.tokens * flops_per_tok
    m.run.train_curve.append([step, state.tokens, loss])
    if not math.isfinite(loss):
        m.run.status, m.active = "diverged", False
        return
    for cb in m.callbacks:
        cb.on_step(state)


def _is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or "out of memory" in str(error).lower()


def _group_loss(models: list, cfg: ModelConfig, attention: str, aux_loss_coef: float | None = None):
    """loss(rows [G, b, T+1]) -> (objective, mean next-token loss) per member, each [G] (nats/token); they differ
    only for MoE, whose objective adds aux_loss_coef x the router's balance loss (`core/objective.py`).

    Dense Llama models go through the stacked forward (`core/stacked_llama.py`); anything else (MoE) is
    one model through its own transformers forward.
    """
    if all(stacked_llama.supports(m) for m in models):
        settings = stacked_llama.hf_settings(models[0])

        def stacked(rows):
            loss = stacked_llama.losses(stacked_llama.stack_weights(models), rows, cfg, attention, **settings)
            return loss, loss
        return stacked
    if len(models) != 1:
        raise ValueError(f"only dense Llama models train as a group (got {type(models[0]).__name__})")
    model = models[0]
    if aux_loss_coef is None:
        def single(rows):
            loss = next_token_loss(model, rows[0]).unsqueeze(0)
            return loss, loss
        return single

    def routed(rows):
        objective, ce = moe_objective(model, rows[0], aux_loss_coef)
        return objective.unsqueeze(0), ce.unsqueeze(0)
    return routed


def _train_step(loss_fn, members: list[_Member], scaler, batch, micro, dev, amp_dtype, grad_clip) -> list[float]:
    """One optimizer step per member over `batch` [G, B, T+1], accumulated over micro-batches of `micro` rows;
    returns each member's mean loss (nats/token)."""
    batch = batch.to(dev, non_blocking=True)
    n_rows = batch.shape[1]
    total = torch.zeros(batch.shape[0], device=dev)
    for start in range(0, n_rows, micro):
        chunk = batch[:, start:start + micro]
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            objective, losses = loss_fn(chunk)  # [G] each; compiled together with the loss when compiling
        share = chunk.shape[1] / n_rows
        scaled = objective * share
        # Summed over members: member g's weights get the gradient of its own loss only.
        (scaler.scale(scaled.sum()) if scaler else scaled.sum()).backward()
        total += losses.detach() * share
    for m in members:
        if scaler:
            scaler.unscale_(m.optimizer)
        torch.nn.utils.clip_grad_norm_(m.model.parameters(), grad_clip)  # each member's own norm
        if scaler:
            scaler.step(m.optimizer)
        else:
            m.optimizer.step()
        m.optimizer.zero_grad(set_to_none=True)
    if scaler:
        scaler.update()
    return total.tolist()


def _evaluate(members: list[_Member], cfg: ModelConfig, val_rows: torch.Tensor) -> None:
    """Validation loss of every active member (nats/token, fp32), appended to its curve and told to its callbacks."""
    active = [m for m in members if m.active]
    if not active:
        return
    models = [m.model for m in active]
    if all(stacked_llama.supports(model) for model in models):
        # SDPA whatever the training kernel: with no backward it is the faster one (3 s against 8 s in fp32 for
        # 128 x 256 rows of a 3.3M model on 2 cores), and the two differ only in summation order. The body runs
        # at the training precision (the model as it trained), the output head and the loss in fp32.
        losses = stacked_validation_losses(models, cfg, val_rows, "sdpa", members[0].plan.amp_dtype)
    else:
        losses = [mean_loss(model, val_rows) for model in models]
    for m, val_loss in zip(active, losses):
        m.run.val_curve.append([m.state.step, m.state.tokens, val_loss])
        for cb in m.callbacks:
            cb.on_eval(m.state, val_loss)


def stacked_validation_losses(models: list, cfg: ModelConfig, val_rows: torch.Tensor, attention: str = "sdpa",
                              amp_dtype: torch.dtype | None = None) -> list[float]:
    """Mean validation loss (nats/token) of each of `models` (same dense shape) on rows [n, T+1].

    amp_dtype None: all in fp32; else the transformer body under that autocast, the output head and loss in fp32.
    """
    device = next(models[0].parameters()).device
    settings = stacked_llama.hf_settings(models[0])
    sums = torch.zeros(len(models), dtype=torch.float64)
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        weights = stacked_llama.stack_weights(models)
        for start in range(0, val_rows.shape[0], EVAL_ROWS_PER_CHUNK):
            chunk = val_rows[start:start + EVAL_ROWS_PER_CHUNK].to(device)
            rows = chunk.unsqueeze(0).expand(len(models), *chunk.shape)  # the same rows for every member
            losses = stacked_llama.losses(weights, rows, cfg, attention, head_fp32=True, **settings)
            sums += losses.double().cpu() * chunk.shape[0]
    return (sums / val_rows.shape[0]).tolist()


def versions() -> dict:
    import transformers

    from cot_lab import __version__

    return {"cot_lab": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
