"""Sweep wall time: one run at a time on all cores against several runs side by side, in one run of this script.

    python benchmarks/sweep_parallel.py [--budgets 3e10 1e11] [--sizes 5] [--workers 2]

Both sweeps train the same plan (the laptop profile's batch and learning-rate rules) into fresh stores.
Printed: wall seconds of each, their ratio, and each one's wall time against the sum of its runs' pure
training seconds (what bookkeeping, evaluation and process start-up add).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

import cot_lab as cl
from cot_lab.scaling.sweep import isoflop_plan, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[3e10, 1e11])
    parser.add_argument("--sizes", type=int, default=5)
    parser.add_argument("--tokens-per-param", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    corpus = cl.load_corpus("synthetic")
    plan = isoflop_plan(args.budgets, args.sizes, tokens_per_param=args.tokens_per_param)
    print(f"plan: {len(plan)} runs, budgets {args.budgets}, {plan.total_flops:.3g} FLOPs; "
          f"{os.cpu_count()} CPUs; device {cl.detect_device().type}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, workers in (("one at a time", 1), (f"{args.workers} side by side", args.workers)):
            threads = torch.get_num_threads()
            start = time.perf_counter()
            result = run_sweep(plan, corpus, cl.RunStore(os.path.join(tmp, label.replace(" ", "_"))),
                               progress=False, workers=workers)
            wall = time.perf_counter() - start
            train_s = sum(r.train_s for r in result.runs)
            results[label] = wall
            per_run = threads if workers == 1 else max(1, (os.cpu_count() or 1) // workers)
            print(f"{label:>16}: {wall:7.1f} s wall, {train_s:7.1f} s of training summed over runs "
                  f"({per_run} thread(s) per run); wall / (training / workers) = {wall / (train_s / workers):.2f}")
    one, many = results.values()
    print(f"speed-up of {args.workers} side by side: {one / many:.2f}x")


if __name__ == "__main__":
    main()
