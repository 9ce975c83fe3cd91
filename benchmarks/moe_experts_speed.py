"""Forward + backward of one small MoE under each transformers experts implementation, in one run of this script.

    python benchmarks/moe_experts_speed.py [--d-model 64] [--n-layer 2] [--experts 8] [--top-k 2]
                                           [--seq-len 64] [--batch 8] [--repeats 10]

transformers 5.x runs Mixtral's fused 3-D expert weights through "eager" (a loop over experts, one `linear` each
on its tokens), "batched_mm" (every token-expert pair's weights gathered, one `bmm`) or "grouped_mm" (tokens sorted
by expert, one grouped matmul; transformers' default). Printed per implementation: the loss (all must agree:
they compute the same function), the largest gradient difference from eager, the median seconds of a
training step's forward + backward, tokens/s, and the time relative to eager; then the fastest correct one.
Implementations are interleaved round by round so all see the same machine. Training FLOPs are counted from the
model's math (`cl.flops_per_token`), whichever kernel runs.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import cot_lab as cl

IMPLEMENTATIONS = ("eager", "batched_mm", "grouped_mm")
LOSS_TOLERANCE = 1e-5  # relative: fp32 summation order differs between kernels, nothing else may
BF16_TOLERANCE = 1e-2  # relative, under bf16 autocast: each kernel rounds its products differently


def step(model, ids, autocast: bool = False) -> tuple[float, list[torch.Tensor]]:
    """(loss in nats/token, gradients) of one forward + backward on ids [b, T+1]; autocast: bf16, as the trainer
    runs on a CPU with native bf16."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids[:, :-1]).logits.float()
    loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
    grads = torch.autograd.grad(loss, [p for p in model.parameters()])
    return float(loss.detach()), grads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--experts", type=int, default=8)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--d-expert", type=int, default=None, help="expert width (default: the config's d_ff)")
    parser.add_argument("--autocast", action="store_true", help="bf16 autocast, the trainer's CPU precision")
    args = parser.parse_args()
    cfg = cl.ModelConfig(arch="moe", d_model=args.d_model, n_layer=args.n_layer, n_head=max(1, args.d_model // 16),
                         seq_len=args.seq_len, n_experts=args.experts, top_k=args.top_k, d_ff=args.d_expert)
    model = cl.build_model(cfg, seed=0).train()
    ids = torch.randint(0, cfg.vocab_size, (args.batch, args.seq_len + 1), generator=torch.Generator().manual_seed(0))
    print(f"{cfg.n_experts} experts top-{cfg.top_k}, d_model {cfg.d_model}, d_expert {cfg.d_ff}, {cfg.n_layer} layers, "
          f"{args.batch} x {args.seq_len} tokens, {torch.get_num_threads()} threads, torch {torch.__version__}"
          f"{', bf16 autocast' if args.autocast else ', fp32'}")
    results, seconds, failed = {}, {name: [] for name in IMPLEMENTATIONS}, {}
    for repeat in range(args.repeats + 1):  # the first round warms caches and is not counted
        for name in IMPLEMENTATIONS:
            if name in failed:
                continue
            try:
                model.set_experts_implementation(name)
                start = time.perf_counter()
                loss, grads = step(model, ids, args.autocast)
                elapsed = time.perf_counter() - start
            except Exception as error:  # an implementation this machine cannot run is reported, not fatal
                failed[name] = f"{type(error).__name__}: {error}"[:120]
                continue
            results[name] = (loss, grads)
            if repeat:
                seconds[name].append(elapsed)
    tokens = args.batch * args.seq_len
    eager_loss, eager_grads = results["eager"]
    base = statistics.median(seconds["eager"])
    correct = []
    for name in IMPLEMENTATIONS:
        if name in failed:
            print(f"{name:11s} FAILED  {failed[name]}")
            continue
        loss, grads = results[name]
        grad_diff = max(float((g - e).abs().max()) for g, e in zip(grads, eager_grads))
        ok = abs(loss / eager_loss - 1) <= (BF16_TOLERANCE if args.autocast else LOSS_TOLERANCE)
        median = statistics.median(seconds[name])
        correct += [(median, name)] if ok else []
        print(f"{name:11s} loss {loss:.6f}  max |grad - eager| {grad_diff:.1e}  {median * 1e3:7.1f} ms  "
              f"{tokens / median:9.0f} tok/s  {median / base:.2f}x eager's time{'' if ok else '  WRONG LOSS'}")
    print(f"fastest correct: {min(correct)[1]}" if correct else "no implementation agrees with eager")


if __name__ == "__main__":
    main()
