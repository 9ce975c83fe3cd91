"""Training throughput of `cl.train` against Hugging Face `Trainer`, and MFU against the measured peak.

Same model (`cl.preset(size)`), same rows of the synthetic corpus, same batch, same optimizer
settings; every figure comes from this one run on this machine, printed as ratios:

    python benchmarks/trainer_throughput.py [--sizes 5e5 2e6 1e7] [--steps 40] [--batch-size 16]

tokens/s counts target tokens per second of the training loop, data loading included, with the
first `--warmup-steps` steps of each trainer left out (both warm up the same way). MFU = achieved
FLOP/s (Chinchilla App. F count) / the measured peak matmul FLOP/s of the precision used.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

import cot_lab as cl


class _Timer(cl.Callback):
    """Times the steps after warm-up (cot-lab side), from the trainer's own clock."""

    def __init__(self, warmup_steps: int):
        self.warmup_steps, self.start, self.end, self.steps = warmup_steps, None, None, 0
        self.first_step_s = None

    def on_step(self, state):
        if state.step == 1:
            self.first_step_s = state.elapsed_s  # includes torch.compile's compilation when compiled
        # elapsed_s is training time (data included, the trainer's periodic evaluations excluded)
        if state.step == self.warmup_steps:
            self.start = state.elapsed_s
        elif state.step > self.warmup_steps:
            self.end, self.steps = state.elapsed_s, state.step - self.warmup_steps


def cot_lab_tokens_per_s(cfg, corpus, steps, batch_size, warmup_steps, compile: bool) -> tuple[float, float]:
    """(tokens/s after warm-up, seconds of the first step) of cl.train with its defaults."""
    timer = _Timer(warmup_steps)
    cl.train(cfg, corpus, tokens=steps * batch_size * cfg.seq_len, batch_size=batch_size, compile=compile,
             callbacks=[timer], progress=False, eval_sequences=8)
    return timer.steps * batch_size * cfg.seq_len / (timer.end - timer.start), timer.first_step_s


def hf_trainer_tokens_per_s(cfg, corpus, steps, batch_size, warmup_steps, bf16: bool) -> float:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    rows = []
    for batch in corpus.train_batches(batch_size, cfg.seq_len, seed=0):
        rows.extend(batch)
        if len(rows) >= steps * batch_size:
            break

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            # Trainer shifts labels itself: the model sees the same T input tokens per row as in cl.train.
            return {"input_ids": rows[i][:-1], "labels": rows[i][:-1]}

    class Timer(TrainerCallback):
        start = end = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == warmup_steps:
                Timer.start = time.perf_counter()
            elif state.global_step == steps:
                Timer.end = time.perf_counter()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cl.build_model(cfg)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=cl.default_lr(cfg),
            lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), weight_decay=0.1, adam_beta2=0.95,
            max_grad_norm=1.0, bf16=bf16, use_cpu=not torch.cuda.is_available(), save_strategy="no", report_to=[],
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
        )
        Trainer(model=model, args=args, train_dataset=Rows(), callbacks=[Timer()]).train()
    return (steps - warmup_steps) * batch_size * cfg.seq_len / (Timer.end - Timer.start)  # input tokens, as for cl.train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[5e5, 2e6, 1e7])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    device = cl.detect_device()
    amp = cl.autocast_dtype(device)
    corpus = cl.load_corpus("synthetic")
    peak = {"fp32": cl.measure_peak_flops(device, torch.float32)}
    if amp is not None:
        peak["bf16"] = cl.measure_peak_flops(device, amp)
    print(f"device {cl.device_name(device)} ({torch.get_num_threads()} threads); peak matmul "
          + ", ".join(f"{k} {v / 1e9:.0f} GFLOP/s" for k, v in peak.items()))
    print(f"batch {args.batch_size} x 128 tokens, {args.steps} steps ({args.warmup_steps} warm-up steps not timed)\n")
    print("cot-lab: compiled (what compile='auto' picks for budgets over ~3e13 FLOPs on CPU), and eager;")
    print("first step = seconds of cot-lab's first compiled step (compilation; ~4 s when inductor's cache is warm)\n")
    header = (f"{'params':>10} {'cot-lab':>9} {'eager':>8} {'HF':>8} {'HF bf16':>8} {'vs HF':>7} {'vs HF bf16':>10} "
              f"{'eager/HF':>9} {'MFU':>6} {'eager MFU':>9} {'first step':>10}")
    print(header + "\n" + " " * 10 + "   (tokens/s)")
    for size in args.sizes:
        cfg = cl.preset(size, vocab_size=corpus.vocab_size)
        precision = "bf16" if amp is not None else "fp32"
        ours, first_step_s = cot_lab_tokens_per_s(cfg, corpus, args.steps, args.batch_size, args.warmup_steps, True)
        eager, _ = cot_lab_tokens_per_s(cfg, corpus, args.steps, args.batch_size, args.warmup_steps, False)
        hf = hf_trainer_tokens_per_s(cfg, corpus, args.steps, args.batch_size, args.warmup_steps, bf16=False)
        hf_bf16 = (hf_trainer_tokens_per_s(cfg, corpus, args.steps, args.batch_size, args.warmup_steps, bf16=True)
                   if amp is not None else float("nan"))
        mfu = ours * cl.flops_per_token(cfg) / peak[precision]
        eager_mfu = eager * cl.flops_per_token(cfg) / peak[precision]
        print(f"{cl.count_params(cfg).total:>10,} {ours:>9,.0f} {eager:>8,.0f} {hf:>8,.0f} {hf_bf16:>8,.0f} "
              f"{ours / hf:>6.2f}x {ours / hf_bf16:>9.2f}x {eager / hf:>8.2f}x {mfu:>6.1%} {eager_mfu:>9.1%} "
              f"{first_step_s:>9.1f}s", flush=True)


if __name__ == "__main__":
    main()
