"""A run's plan: `train`'s arguments validated and everything decided before the first step (steps, recipe, key).

A panel calls `plan_run` on every slider move to look the setting up in the store (`store.get(plan.key)`)
without training; the trainer (`core/training.py`) trains a plan, or a group of plans that differ only
in seed and learning rate (`group_key`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from cot_lab.core.accounting import flops_per_token
from cot_lab.core.config import ModelConfig
from cot_lab.core.device import autocast_dtype, precision_name, resolve_device
from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES
from cot_lab.core.objective import DEFAULT_AUX_LOSS_COEF
from cot_lab.core.recipe import BETA2, default_lr
from cot_lab.core.runs import NOT_KEYED, run_key
from cot_lab.core.validate import fraction, integer, number
from cot_lab.data.base import Corpus

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


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
             beta2: float | None = None,
             device: str | torch.device | None = None, precision: str = "auto", compile: bool | str = "auto",
             micro_batch_size: int | None = None, eval_sequences: int = DEFAULT_EVAL_SEQUENCES,
             init_fingerprint: str | None = None, mup_base_width: int | None = None,
             aux_loss_coef: float | None = None) -> RunPlan:
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
    beta2 = BETA2 if beta2 is None else number("beta2", beta2, high=1.0, high_open=True, hint="AdamW's beta2, e.g. 0.95 or 0.99")
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
    hparams = dict(attention=_training_attention(dev, amp_dtype, cfg), compiled=_use_compile(compile, dev, budget_flops, value),
                   seed=seed, batch_size=batch_size, lr=lr, warmup=warmup, min_lr_ratio=min_lr_ratio,
                   weight_decay=weight_decay, grad_clip=grad_clip, beta2=beta2, decay_embeddings=False,
                   eval_sequences=eval_sequences)
    if init_fingerprint is not None:  # fine-tuning: the starting weights decide the result too
        hparams["init"] = init_fingerprint
    if micro_batch_size is not None:
        hparams["micro_batch_size"] = micro_batch_size
    if mup_base_width is not None:  # only then: runs of the standard parametrisation keep the keys they always had
        hparams["mup_base_width"] = _check_mup(cfg, mup_base_width)
    if cfg.arch == "moe":  # MoE keys only: every dense key stays as it was
        hparams["aux_loss_coef"] = _check_aux_loss_coef(aux_loss_coef)
    elif aux_loss_coef is not None:
        raise ValueError(f"aux_loss_coef={aux_loss_coef!r} weights an MoE router's balance loss; cfg.arch is "
                         f"{cfg.arch!r}: leave it None or train an MoE (cl.ModelConfig(arch='moe'))")
    spec = dict(config=cfg.to_dict(), corpus=corpus.fingerprint, budget={"kind": kind, "value": value},
                hparams=hparams, precision=precision_name(amp_dtype), device=dev.type)
    keyed = {**spec, "hparams": {k: v for k, v in hparams.items() if k not in NOT_KEYED}}
    return RunPlan(cfg, kind, value, dev, amp_dtype, precision_name(amp_dtype), tokens_per_step, per_token,
                   total_steps, hparams, spec, run_key(keyed))


def _check_mup(cfg: ModelConfig, base_width) -> int:
    base_width = integer("mup_base_width", base_width, hint="the width muP is tuned at, e.g. 32")
    if cfg.arch != "dense":
        raise ValueError(f"mup_base_width is for dense models (cfg.arch={cfg.arch!r}); train MoE models without it")
    return base_width


def _check_aux_loss_coef(coef) -> float:
    if coef is None:
        return DEFAULT_AUX_LOSS_COEF
    return number("aux_loss_coef", coef, low=0.0, low_open=False, hint="e.g. 0, 1e-3 or 1e-2 (Switch's alpha)")


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


def _training_attention(dev: torch.device, amp_dtype, cfg: ModelConfig) -> str:
    """Attention kernel for training: SDPA, except eager (matmul + softmax) for bf16 on CPU below d_model 256.

    Measured on a 2-core AVX-512-bf16 EPYC, 40 steps of 16 x 256 tokens (benchmarks/trainer_throughput.py
    shapes): eager beat the CPU flash-attention kernel's bf16 backward by 6% at d_model 128 (4 layers) and
    by 1.2-1.6x on the sweep's 30K-300K models at 2-4 sequences a step; SDPA won by 11% at d_model 256.
    In fp32 SDPA was faster. The two differ only in summation order.
    """
    if dev.type == "cpu" and amp_dtype == torch.bfloat16 and cfg.d_model < 256:
        return "eager"
    return "sdpa"


def group_key(plan: RunPlan) -> str:
    """What runs trained together as one batched computation must share: everything but seed and learning rate."""
    hparams = {k: v for k, v in plan.spec["hparams"].items() if k not in ("seed", "lr", *NOT_KEYED)}
    return run_key({**plan.spec, "hparams": hparams})
