"""Latency of pruned and quantized models against the dense one, measured in one run on this machine.

    python benchmarks/compression.py [--params 2e6] [--batch-size 8] [--n-tokens 32] [--repeats 20]

The model is `cl.preset(--params)` with random weights (latency does not depend on the values; quality is
notebook 03's business). Every variant is timed in this process, in rounds interleaved with the others: the
median of --repeats timed calls after a warm-up round, for scoring a batch (one forward of batch x context
tokens) and for generating --n-tokens tokens greedily with the KV cache. Ratios below 1 are faster than dense.
"""
from __future__ import annotations

import argparse
import copy

import torch

import cot_lab as cl
from cot_lab import compress
from cot_lab.compress.metrics import interleaved_medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=2e6)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--n-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    cfg = cl.preset(args.params, seq_len=args.seq_len)
    dense = cl.build_model(cfg, seed=0).eval()
    variants = {
        "dense fp32": dense,
        "50% magnitude (zeros)": cl.prune(copy.deepcopy(dense), 0.5, "magnitude"),
        "50% heads": cl.prune(copy.deepcopy(dense), 0.5, "heads"),
        "50% mlp neurons": cl.prune(copy.deepcopy(dense), 0.5, "mlp"),
        "50% heads + mlp": cl.prune(cl.prune(copy.deepcopy(dense), 0.5, "heads"), 0.5, "mlp"),
        "int8 (torchao)": cl.quantize(copy.deepcopy(dense), "int8"),
        "int8 weight-only": cl.quantize(copy.deepcopy(dense), "int8", backend="weight-only"),
        "bf16": cl.quantize(copy.deepcopy(dense), "bf16"),
    }
    print(f"model {cfg.d_model}x{cfg.n_layer}, {cfg.n_head} heads, d_ff {cfg.d_ff}: "
          f"{cl.count_params(cfg).total:,} params; {torch.get_num_threads()} threads, "
          f"{cl.device_name(torch.device('cpu'))}, torch {torch.__version__}")
    print(f"score: batch {args.batch_size} x {args.seq_len} tokens; generate: {args.n_tokens} tokens after a "
          f"16-token prompt; median of {args.repeats}")
    # Rounds: every variant once per round, so a burst of load elsewhere on the machine hits all of them alike.
    score = interleaved_medians({k: (lambda m=m: compress.score_latency(m, batch_size=args.batch_size, repeats=1,
                                                                          warmup=0)) for k, m in variants.items()},
                                repeats=args.repeats, warmup=1)
    generate = interleaved_medians({k: (lambda m=m: compress.generate_latency(m, n_tokens=args.n_tokens, repeats=1,
                                                                              warmup=0)) for k, m in variants.items()},
                                   repeats=max(3, args.repeats // 4), warmup=1)
    base = "dense fp32"
    print(f"{'variant':24s} {'file':>10s} {'score ms':>9s} {'ratio':>6s} {'generate ms':>12s} {'ratio':>6s}")
    for k, m in variants.items():
        print(f"{k:24s} {compress.disk_bytes(m) / 1e6:8.2f}MB {score[k] * 1e3:9.2f} {score[k] / score[base]:6.2f} "
              f"{generate[k] * 1e3:12.1f} {generate[k] / generate[base]:6.2f}")


if __name__ == "__main__":
    main()
