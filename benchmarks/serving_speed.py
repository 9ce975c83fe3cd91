"""Serving speed of ladder models on this device: decode tokens/s against the bandwidth and compute ceilings.

    python benchmarks/serving_speed.py [--rungs 0,8,23] [--batch-sizes 1,8] [--prompt-tokens 64] [--new-tokens 64]

For each model (`cl.size_ladder()` rungs, random weights: speed does not depend on the values) and batch size,
`cl.measure_serving` times the prefill and `--new-tokens` greedy decode steps from the KV cache. Printed beside
the measured decode tokens/s:
- the bandwidth ceiling, batch * bandwidth / (weight bytes + batch * KV bytes per token * context), with this
  machine's bandwidth measured by a copy benchmark (Pope et al. 2022, arXiv 2211.05102: decoding at small batch
  is memory-bound);
- the compute ceiling, measured peak matmul FLOP/s (`cl.measure_peak_flops`, in the model's dtype) / forward
  FLOPs per token (Hoffmann et al. 2022 App. F, forward only, at the mean context).
Then the dynamic against the static cache (compiled decode step on CUDA) on this device, and the decode loop
`measure_serving` uses against `model.generate`, both per token, timed side by side in one run.
"""
from __future__ import annotations

import argparse

import torch

import cot_lab as cl
from cot_lab.core.timing import interleaved_medians
from cot_lab.inference.bandwidth import measure_memory_bandwidth
from cot_lab.inference.serving import decode, measure_serving, new_cache, prefill

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def loop_vs_generate(model, prompt_tokens: int, new_tokens: int, repeats: int, dev) -> dict[str, float]:
    """Seconds per decode step of the manual cache loop and of `model.generate`, batch 1, dynamic cache."""
    from transformers import GenerationConfig

    ids = torch.randint(0, model.config.vocab_size, (1, prompt_tokens), generator=torch.Generator().manual_seed(0))
    ids = ids.to(dev)  # [1, prompt_tokens]
    # new_tokens + 1: generate's first token comes from the prefill, then new_tokens decode steps, as in the loop
    config = GenerationConfig(max_new_tokens=new_tokens + 1, min_new_tokens=new_tokens + 1, do_sample=False,
                              use_cache=True, pad_token_id=0, bos_token_id=None, eos_token_id=None)

    def only_prefill():
        prefill(model, ids, new_cache(model, "dynamic", prompt_tokens))

    def loop():
        kv = new_cache(model, "dynamic", prompt_tokens + new_tokens)
        decode(model, prefill(model, ids, kv), kv, new_tokens)

    with torch.inference_mode():
        t = interleaved_medians({"prefill": only_prefill, "loop": loop,
                                 "generate": lambda: model.generate(ids, generation_config=config)},
                                repeats=repeats, warmup=1, device=dev)
    return {k: (t[k] - t["prefill"]) / new_tokens for k in ("loop", "generate")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rungs", type=ints, default=(0, 8, 23), help="indices into cl.size_ladder()")
    parser.add_argument("--batch-sizes", type=ints, default=(1, 8))
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", choices=DTYPES, default="float32")
    parser.add_argument("--bandwidth-mib", type=int, default=256, help="copy buffer for the bandwidth benchmark")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    dev = cl.resolve_device(args.device)
    dtype = DTYPES[args.dtype]
    bandwidth = measure_memory_bandwidth(args.bandwidth_mib * 2**20, repeats=5, device=dev)
    peak = cl.measure_peak_flops(dev, dtype)
    print(f"{cl.device_name(dev)} ({dev.type}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.dtype}")
    print(f"memory bandwidth (copy, read + write, {args.bandwidth_mib} MiB): {bandwidth / 1e9:.1f} GB/s; "
          f"peak matmul {peak / 1e9:.1f} GFLOP/s; prompt {args.prompt_tokens}, decode {args.new_tokens} tokens, "
          f"median of {args.repeats}")
    ladder = cl.size_ladder()
    header = (f"{'params':>10s} {'cache':>14s} {'batch':>5s} {'prefill tok/s':>13s} {'decode tok/s':>12s} "
              f"{'ms/token':>9s} {'bw ceiling':>11s} {'of bw':>6s} {'compute ceil':>12s} {'of peak':>7s}")
    print(header)
    speeds: dict[tuple[int, str, int], float] = {}
    for rung in args.rungs:
        cfg = ladder[rung]
        model = cl.build_model(cfg, seed=0).to(dev, dtype)
        for cache in ("dynamic", "static"):
            report = measure_serving(model, batch_sizes=args.batch_sizes, prompt_tokens=args.prompt_tokens,
                                     new_tokens=args.new_tokens, repeats=args.repeats, cache=cache,
                                     bandwidth_bytes_per_s=bandwidth)
            compute_ceiling = peak / report.forward_flops_per_token
            for row in report.batches:
                speeds[rung, cache, row.batch_size] = row.decode_tokens_per_s
                print(f"{report.params:>10,d} {report.cache:>14s} {row.batch_size:5d} {row.prefill_tokens_per_s:13.0f} "
                      f"{row.decode_tokens_per_s:12.0f} {row.ms_per_token:9.3f} {row.ceiling_tokens_per_s:11.3g} "
                      f"{row.fraction_of_ceiling:6.1%} {compute_ceiling:12.3g} "
                      f"{row.decode_tokens_per_s / compute_ceiling:7.2%}")
    print("\nstatic / dynamic cache, decode tokens/s (above 1: the static cache is faster here)")
    for rung in args.rungs:
        ratios = "  ".join(f"batch {b}: {speeds[rung, 'static', b] / speeds[rung, 'dynamic', b]:.2f}"
                           for b in args.batch_sizes)
        print(f"{cl.count_params(ladder[rung]).total:>10,d}  {ratios}")
    print("\nms per decode step at batch 1: the cache loop measure_serving times vs model.generate")
    for rung in args.rungs:
        model = cl.build_model(ladder[rung], seed=0).to(dev, dtype).eval()
        per_step = loop_vs_generate(model, args.prompt_tokens, args.new_tokens, args.repeats, dev)
        loop_s, generate_s = per_step["loop"], per_step["generate"]
        print(f"{cl.count_params(ladder[rung]).total:>10,d}  loop {loop_s * 1e3:.3f}  generate {generate_s * 1e3:.3f}  "
              f"generate / loop {generate_s / loop_s:.2f}")


if __name__ == "__main__":
    main()
