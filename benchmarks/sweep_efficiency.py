"""A profile's IsoFLOP sweep against the machine's limit, with one seed and with two, in one run of this script.

    python benchmarks/sweep_efficiency.py [--profile laptop] [--workers N] [--seeds-only 2]

Both sweeps train the profile's plan into fresh stores with the executor's defaults (worker processes,
a point's seeds trained as one batched group where `job_groups` says so). Printed per sweep: wall
seconds, training FLOPs (Chinchilla App. F count), and efficiency = training FLOPs / (wall seconds x
the measured peak matmul FLOP/s of the cores used, in the precision the runs train in). Targets
(issue 12, laptop profile on a 2-core CPU): efficiency >= 15%, the two-seed sweep in <= 15 minutes.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

import cot_lab as cl
from cot_lab.core.executor import default_workers
from cot_lab.scaling.sweep import profile_plan, run_sweep

TARGET_EFFICIENCY, TARGET_TWO_SEEDS_S = 0.15, 15 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="laptop")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="sweeps to time: seeds per point")
    args = parser.parse_args()

    prof = cl.profile(args.profile)
    corpus = cl.load_corpus(prof.corpus)
    plan = profile_plan(prof, corpus)
    workers = args.workers or default_workers()
    device = cl.detect_device()
    amp = cl.autocast_dtype(device)
    peak = cl.measure_peak_flops(device, amp or torch.float32)  # all of this process's threads: the cores used
    print(f"{prof.name} plan: {len(plan)} points, {plan.total_flops:.3g} training FLOPs per seed; {workers} workers on "
          f"{os.cpu_count()} CPUs; peak {'bf16' if amp else 'fp32'} matmul {peak / 1e9:.0f} GFLOP/s "
          f"({torch.get_num_threads()} threads)")
    with tempfile.TemporaryDirectory() as tmp:
        for n_seeds in args.seeds:
            store = cl.RunStore(os.path.join(tmp, f"seeds{n_seeds}"))
            start = time.perf_counter()
            result = run_sweep(plan, corpus, store, seeds=list(range(n_seeds)), workers=workers, progress=False,
                               eval_sequences=prof.eval_sequences)
            wall = time.perf_counter() - start
            flops = sum(r.flops for r in result.runs)
            efficiency = flops / (wall * peak)
            verdict = "ok" if efficiency >= TARGET_EFFICIENCY else "MISS"
            line = (f"{n_seeds} seed(s): {len(result.runs)} runs in {wall:.0f} s ({wall / 60:.1f} min), "
                    f"{flops:.3g} FLOPs; efficiency {efficiency:.1%} (target {TARGET_EFFICIENCY:.0%}: {verdict}); "
                    f"{result.timing()}")
            if n_seeds == 2:
                line += f"; target <= {TARGET_TWO_SEEDS_S / 60:.0f} min: {'ok' if wall <= TARGET_TWO_SEEDS_S else 'MISS'}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
