"""The `cot-lab` command: `doctor` (is this machine ready?) and `train` (one budgeted run)."""
from __future__ import annotations

import argparse
import platform
import sys


def _doctor(args) -> int:
    import torch
    import transformers

    from . import __version__
    from .hardware import autocast_dtype, detect_device, device_name, measure_peak_flops, precision_name
    from .paths import home
    from .runs import RunStore

    device = detect_device()
    amp = autocast_dtype(device)
    print(f"cot-lab {__version__}  python {platform.python_version()}  torch {torch.__version__}  "
          f"transformers {transformers.__version__}")
    print(f"device      {device.type}  ({device_name(device)}, {torch.get_num_threads()} threads)")
    print(f"precision   {precision_name(amp)} autocast")
    print("measuring peak matmul FLOP/s (cached after the first time)...", flush=True)
    fp32 = measure_peak_flops(device, torch.float32)
    print(f"peak fp32   {fp32 / 1e9:,.0f} GFLOP/s")
    if amp is not None:
        print(f"peak {str(amp).removeprefix('torch.')}  {measure_peak_flops(device, amp) / 1e9:,.0f} GFLOP/s")
    store = RunStore()
    print(f"home        {home()}")
    print(f"run store   {store.db_path}  ({len(store)} runs)")
    return 0


def _train(args) -> int:
    from .accounting import count_params, flops_per_token
    from .config import preset
    from .data import load_corpus
    from .runs import RunStore
    from .train import train

    corpus = load_corpus(args.corpus)
    cfg = preset(args.params, vocab_size=corpus.vocab_size, seq_len=args.seq_len)
    budget = {k: getattr(args, k) for k in ("flops", "tokens", "seconds") if getattr(args, k) is not None}
    n = count_params(cfg)
    print(f"model  d_model={cfg.d_model} n_layer={cfg.n_layer} n_head={cfg.n_head}: {n.total:,} params "
          f"({n.non_embedding:,} non-embedding), {flops_per_token(cfg):.3g} FLOPs/token")
    store = None if args.no_store else RunStore()
    run = train(cfg, corpus, seed=args.seed, batch_size=args.batch_size, store=store, device=args.device, **budget)
    floor = f"  (entropy floor {run.entropy:.4f})" if run.entropy is not None else ""
    print(f"run    {run.run_id}  status={run.status}{'  (from store)' if run.from_store else ''}")
    print(f"       {run.tokens:,} tokens, {run.flops:.3g} FLOPs, {run.wall_s:.1f} s on {run.device} ({run.precision})")
    print(f"       final validation loss {run.final_val_loss:.4f} nats/token{floor}")
    return 0 if run.status == "ok" else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cot-lab", description="cot-lab: compute-optimal training, by doing it")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="device, measured peak FLOP/s, versions, store path").set_defaults(func=_doctor)
    tr = sub.add_parser("train", help="train one model under a budget")
    tr.add_argument("--params", type=float, default=1e6, help="target model size in parameters (default 1e6)")
    budget = tr.add_mutually_exclusive_group(required=True)
    budget.add_argument("--flops", type=float, help="training FLOPs budget, e.g. 1e12")
    budget.add_argument("--tokens", type=float, help="training tokens budget")
    budget.add_argument("--seconds", type=float, help="wall-clock budget in seconds")
    tr.add_argument("--corpus", default="synthetic", help="synthetic | python-docs | python-code | a path")
    tr.add_argument("--seq-len", type=int, default=128)
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    tr.add_argument("--no-store", action="store_true", help="do not read or write the run store")
    tr.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cot-lab` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"cot-lab: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
