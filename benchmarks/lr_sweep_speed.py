"""An LR sweep's wall time with its rates trained as one batched group against one run after another.

    python benchmarks/lr_sweep_speed.py [--d-model 32] [--n-layer 4] [--flops 1e11] [--rates 6]

Both train the same runs (same keys, fresh stores, one process, all threads): `cl.lr_sweep` groups the rates of
one shape, budget and batch into one `train_many` computation (every weight stacked, every matmul batched);
the baseline calls `cl.train` once per rate. Printed: each wall time, the ratio, and the largest difference in
final loss between the two (they are the same runs: it should be at the level of bf16 rounding).
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import cot_lab as cl
from cot_lab.hparams.sweeps import lr_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=32)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--flops", type=float, default=1e11)
    parser.add_argument("--rates", type=int, default=6)
    args = parser.parse_args()
    corpus = cl.load_corpus("synthetic-v3")
    cfg = cl.ModelConfig(d_model=args.d_model, n_layer=args.n_layer, n_head=args.d_model // 8,
                         vocab_size=corpus.vocab_size, seq_len=128)
    lrs = list(np.geomspace(1.25e-3, 1.25e-3 * 2 ** (args.rates - 1), args.rates))
    batch = cl.batch_size_for(args.flops, cfg.seq_len)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        start = time.perf_counter()
        batched = lr_sweep(cfg, corpus, flops=args.flops, lrs=lrs, batch_size=batch, store=cl.RunStore(a),
                           progress=False)
        batched_s = time.perf_counter() - start
        start = time.perf_counter()
        alone = [cl.train(cfg, corpus, flops=args.flops, lr=lr, batch_size=batch, store=cl.RunStore(b), progress=False)
                 for lr in sorted(lrs)]
        alone_s = time.perf_counter() - start
    diff = max(abs(r.final_val_loss - s.final_val_loss) for r, s in zip(batched.runs, alone))
    print(f"{cl.count_params(cfg).total:,} parameters, {args.rates} rates, {args.flops:.0e} FLOPs each, batch {batch}")
    print(f"batched (one train_many group): {batched_s:.1f} s; one after another: {alone_s:.1f} s; "
          f"speed-up {alone_s / batched_s:.2f}x; largest final-loss difference {diff:.2e} nats/token")


if __name__ == "__main__":
    main()
