"""Dense against MoE on this machine: training milliseconds per step and serving speed and memory, measured.

Matched active FLOPs say nothing about seconds: an MoE step also routes (a softmax and top-k per token, a sort of
the tokens by expert) and runs its experts as one grouped matmul over uneven groups. So each dense / MoE pair is
timed here, in one process, the two interleaved round by round so both see the same machine (the ratio is what
is reported, never a timed test). Serving: the weights an MoE must keep in memory are all its experts', while a
decode step reads only the routed ones' (plus the router's), measured by `cl.measure_serving` (notebook 04).
"""
from __future__ import annotations

import statistics

from cot_lab.core import validate
from cot_lab.core.accounting import active_params, count_params, flops_per_token
from cot_lab.core.config import ModelConfig, build_model, experts_implementation


def _ms_per_step(cfg: ModelConfig, corpus, steps: int, batch_size: int, seed: int) -> float:
    from cot_lab.core.training import train

    run = train(cfg, corpus, tokens=steps * batch_size * cfg.seq_len, batch_size=batch_size, seed=seed,
                eval_sequences=8, progress=False, compile=False)
    return 1e3 * run.train_s / run.steps


def training_speed(pairs, corpus, *, steps: int = 40, rounds: int = 3, batch_size: int = 4) -> list[dict]:
    """Per (dense, moe) pair: median training milliseconds per optimizer step (batch_size x seq_len tokens) of each,
    interleaved over `rounds` rounds of `steps` steps, and moe / dense, the wall-clock cost of one token."""
    steps = validate.integer("steps", steps, hint="optimizer steps per timing, e.g. 40")
    rounds = validate.integer("rounds", rounds, hint="interleaved rounds, e.g. 3")
    batch_size = validate.integer("batch_size", batch_size, hint="sequences per step, e.g. 4")
    out = []
    for dense, moe in pairs:
        times = {"dense": [], "moe": []}
        for r in range(rounds):
            for name, cfg in (("dense", dense), ("moe", moe)):
                times[name].append(_ms_per_step(cfg, corpus, steps, batch_size, seed=r))
        dense_ms, moe_ms = statistics.median(times["dense"]), statistics.median(times["moe"])
        out.append(dict(d_model=dense.d_model, dense_ms_per_step=dense_ms, moe_ms_per_step=moe_ms,
                        moe_over_dense=moe_ms / dense_ms, batch_size=batch_size, steps=steps, rounds=rounds,
                        experts_implementation=experts_implementation(moe)))
    return out


def serving_speed(pairs, *, batch_sizes=(1, 8), new_tokens: int = 32, repeats: int = 3) -> list[dict]:
    """Per pair: memory_bytes (every weight, all experts), weight_bytes_per_step (what one batch-1 decode step reads:
    the routed experts only, `cl.inference`'s count), parameters (total and active), training FLOPs per token and,
    per batch size, measured decode tokens/s and milliseconds per token, of each model."""
    from cot_lab.inference.serving import measure_serving

    out = []
    for dense, moe in pairs:
        row = dict(d_model=dense.d_model)
        for name, cfg in (("dense", dense), ("moe", moe)):
            model = build_model(cfg, seed=0)
            report = measure_serving(model, batch_sizes=batch_sizes, prompt_tokens=32, new_tokens=new_tokens,
                                     repeats=repeats)
            memory = sum(p.numel() * p.element_size() for p in model.parameters())
            row[name] = dict(memory_bytes=memory, weight_bytes_per_step=report.weight_bytes, total_params=count_params(cfg).total,
                             active_params=active_params(cfg), flops_per_token=flops_per_token(cfg),
                             decode_tokens_per_s={b.batch_size: b.decode_tokens_per_s for b in report.batches},
                             ms_per_token={b.batch_size: b.ms_per_token for b in report.batches})
        out.append(row)
    return out


def measure_pairs(pairs, *, steps: int = 40, rounds: int = 3, batch_size: int = 4) -> dict:
    """{"training": `training_speed`, "serving": `serving_speed`} of the pairs on notebook 06's language."""
    from cot_lab.data import load_corpus

    corpus = load_corpus("synthetic-v3")
    return dict(training=training_speed(pairs, corpus, steps=steps, rounds=rounds, batch_size=batch_size),
                serving=serving_speed(pairs))
