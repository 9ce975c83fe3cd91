"""One short script for a CUDA machine: the CUDA tests, then throughput (bf16, compiled, many small runs) and MFU.

    python benchmarks/gpu_check.py [--quick]

Prints, in one run on one GPU: the measured bf16 matmul peak; cl.train's tokens/s and MFU (achieved FLOP/s,
Chinchilla App. F count, over the measured peak) for a >= 20M-parameter model, eager and compiled (the
compile time counted in the run's wall time, as `compile="auto"` sees it); and many small runs of one
shape as one batched computation (`cl.train_many`) against the same runs one at a time. Exits non-zero
if a CUDA test fails. Needs no network; takes a few minutes on an H100-class GPU.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run_tests() -> int:
    print("== CUDA tests (tests/test_gpu.py)", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_gpu.py")],
                           cwd=ROOT)


def throughput(corpus, size: float, steps: int, batch_size: int, seq_len: int, peak: float) -> None:
    import cot_lab as cl

    cfg = cl.preset(size, vocab_size=corpus.vocab_size, seq_len=seq_len)
    tokens = steps * batch_size * seq_len
    print(f"\n== one run: {cl.count_params(cfg).total / 1e6:.1f}M params, {steps} steps of {batch_size} x {seq_len}, bf16",
          flush=True)
    for compile in (False, True):
        run = cl.train(cfg, corpus, tokens=tokens, batch_size=batch_size, precision="bf16", compile=compile,
                       progress=False)
        steady = _steady_tokens_per_s(run)
        print(f"compile={compile!s:5}: {tokens / run.wall_s:>10,.0f} tok/s over the whole run ({run.wall_s:.1f} s, "
              f"compilation and evaluation included); steady {steady:>10,.0f} tok/s = MFU "
              f"{steady * cl.flops_per_token(cfg) / peak:.1%} of the measured bf16 peak", flush=True)


def _steady_tokens_per_s(run) -> float:
    """Tokens/s over the second half of the steps, from the run's own curve and training clock (no warm-up)."""
    curve = run.train_curve
    half = len(curve) // 2
    share = (curve[-1][1] - curve[half][1]) / curve[-1][1]  # steps are equal: time share = token share
    return (curve[-1][1] - curve[half][1]) / (run.train_s * share) if share > 0 else float("nan")


def many_small(corpus, n_runs: int, size: float, steps: int) -> None:
    import cot_lab as cl

    cfg = cl.preset(size, vocab_size=corpus.vocab_size)
    common = dict(tokens=steps * 16 * cfg.seq_len, batch_size=16, progress=False, compile=False)
    print(f"\n== {n_runs} runs of {cl.count_params(cfg).total / 1e3:.0f}K params, {steps} steps each", flush=True)
    start = time.perf_counter()
    for seed in range(n_runs):
        cl.train(cfg, corpus, seed=seed, **common)
    one_by_one = time.perf_counter() - start
    start = time.perf_counter()
    cl.train_many(cfg, corpus, seeds=list(range(n_runs)), **common)
    grouped = time.perf_counter() - start
    print(f"one at a time {one_by_one:.1f} s; as one batched group {grouped:.1f} s: {one_by_one / grouped:.2f}x", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke check of the script itself)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to check (everything else runs in `make test`)")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    failed = run_tests()
    import cot_lab as cl

    device = torch.device("cuda")
    peak = cl.measure_peak_flops(device, torch.bfloat16)
    print(f"\n{cl.device_name(device)}: measured bf16 matmul peak {peak / 1e12:.0f} TFLOP/s", flush=True)
    corpus = cl.load_corpus("synthetic")
    steps = 20 if args.quick else 200
    throughput(corpus, 2.5e7, steps, 32, 512, peak)
    many_small(corpus, 8, 2e5, 20 if args.quick else 300)
    print("\nCUDA tests:", "FAILED" if failed else "passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
