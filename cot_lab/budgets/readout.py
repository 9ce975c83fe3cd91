"""What a compute budget is and buys, as plain arithmetic (no widgets, no training): notebook 01's read-outs.

`budget_readout`: GPU-hours at an MFU -> FLOPs, USD, kWh (`cot_lab.Budget`); a model size -> training
tokens at that budget, tokens per parameter and how long this machine would take; and the
compute-optimal model that the Chinchilla and Epoch laws name for that budget.
"""
from __future__ import annotations

import math

from cot_lab.budgets.budget import Budget
from cot_lab.budgets.gpus import gpu as lookup_gpu
from cot_lab.core import validate
from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.core.device import ASSUMED_EFFICIENCY
from cot_lab.core.law import CHINCHILLA, EPOCH_REPLICATION
from cot_lab.core.shapes import preset
from cot_lab.data import DEFAULT_VOCAB

# The two published laws the panel compares; both assume C = 6 N D and were fitted on MassiveText.
LAWS = {"Chinchilla": CHINCHILLA, "Epoch": EPOCH_REPLICATION}


def positive(name: str, value, hint: str, high: float = math.inf) -> float:
    """`value` as a float in (0, high] (validate.number with the hint as its third argument, as the panel calls it)."""
    return validate.number(name, value, high=high, hint=hint)


def within(name: str, value, bounds: tuple[float, float]) -> float:
    """`value` if a slider with `bounds` can show it (a slider would silently clip it); else a ValueError."""
    return validate.number(name, value, low=bounds[0], low_open=False, high=bounds[1], hint="the slider's range")


def budget_readout(gpu: str, hours: float, mfu: float = 0.4, usd_per_hour: float | None = None,
                   n_params: float = 1e8, *, vocab_size: int = DEFAULT_VOCAB, seq_len: int = 128,
                   local_peak_flops: float | None = None, local_mfu: float = ASSUMED_EFFICIENCY["cpu"]) -> dict:
    """What `hours` GPU-hours of `gpu` at `mfu` are worth and buy, as plain numbers.

    Keys: gpu, hours, mfu, usd_per_hour (None: no price known), price_source, price_date,
    flops (FLOPs), usd (USD, None without a price), kwh (board power only), watts;
    config (the `preset` shape nearest `n_params`), n_params (its exact total), flops_per_token
    (training FLOPs per token, Chinchilla App. F accounting at `seq_len`), tokens, tokens_per_param;
    local_peak_flops (FLOP/s), local_mfu, local_seconds (the budget on this machine; None without a peak);
    laws: {"Chinchilla" | "Epoch": {n_opt, d_opt, tokens_per_param, loss_opt, loss_model, source}},
    losses in nats/token on the laws' own data (MassiveText), not on this kit's corpora.
    """
    g = lookup_gpu(gpu)
    priced = usd_per_hour is not None or g.usd_per_hour is not None
    from_catalog = usd_per_hour is None or usd_per_hour == g.usd_per_hour
    # Budget needs a price; a GPU the catalog has no price for still has FLOPs and kWh, so those are
    # computed at a placeholder price of 0 and the USD is reported as unknown (None), never as $0.
    budget = Budget.from_gpu_hours(g.name, hours, mfu, usd_per_hour if priced else 0.0)
    cfg = preset(n_params, vocab_size=vocab_size, seq_len=seq_len)
    n_total = count_params(cfg).total
    per_token = flops_per_token(cfg, "chinchilla")
    tokens = budget.flops / per_token
    local_seconds = None
    if local_peak_flops is not None:
        local_peak_flops = validate.number("local_peak_flops", local_peak_flops,
                                           hint="FLOP/s, e.g. cl.measure_peak_flops()")
        local_mfu = validate.number("local_mfu", local_mfu, high=1.0, hint="a fraction of the measured peak, e.g. 0.05")
        local_seconds = budget.flops / (local_peak_flops * local_mfu)
    laws = {}
    for name, law in LAWS.items():
        n_opt, d_opt = law.optimal(budget.flops)
        laws[name] = dict(n_opt=n_opt, d_opt=d_opt, tokens_per_param=d_opt / n_opt, loss_opt=law.loss(n_opt, d_opt),
                          loss_model=law.loss(n_total, tokens), source=law.source)
    return dict(
        gpu=g.name, hours=budget.hours, mfu=budget.mfu, usd_per_hour=budget.usd_per_hour if priced else None,
        price_source=g.price_source if from_catalog else "your price",
        price_date=g.price_date if from_catalog else None,
        flops=budget.flops, usd=budget.usd if priced else None, kwh=budget.kwh, watts=budget.watts,
        config=cfg, n_params=n_total, flops_per_token=per_token, tokens=tokens, tokens_per_param=tokens / n_total,
        local_peak_flops=local_peak_flops, local_mfu=local_mfu if local_peak_flops is not None else None,
        local_seconds=local_seconds, laws=laws,
    )
