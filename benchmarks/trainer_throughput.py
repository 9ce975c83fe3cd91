"""Training throughput of `cl.train` (its defaults: what a user gets) against Hugging Face `Trainer`, in one run.

    python benchmarks/trainer_throughput.py [--shapes 64x2 256x4] [--steps 40] [--batch-size 16] [--seq-len 256]

Same Llama model (d_model x n_layer, head size 16 below d_model 128 else 32), same rows of the synthetic
corpus, same batch and optimizer settings. Each side is timed over its whole call, first step and
warm-up included: `cl.train` by its run's own wall clock (model build, evaluations and any compilation
included: its periodic evaluation is part of what a user gets), `Trainer.train()` by the wall clock
around it. tokens/s counts input tokens; ratios are cot-lab / Trainer. The target (issue 12) is at least
1.0x Trainer with bf16=True and 1.5x Trainer's defaults (fp32 on CPU) at both shapes. MFU = achieved
FLOP/s (Chinchilla App. F count) / the measured peak matmul FLOP/s of the precision used.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

import cot_lab as cl

TARGET_VS_BF16, TARGET_VS_DEFAULTS = 1.0, 1.5


def shape(text: str, corpus, seq_len: int) -> cl.ModelConfig:
    d_model, n_layer = (int(x) for x in text.lower().split("x"))
    head = 16 if d_model < 128 else 32
    return cl.ModelConfig(d_model=d_model, n_layer=n_layer, n_head=d_model // head, vocab_size=corpus.vocab_size,
                          seq_len=seq_len)


def cot_lab_run(cfg, corpus, steps, batch_size) -> cl.Run:
    return cl.train(cfg, corpus, tokens=steps * batch_size * cfg.seq_len, batch_size=batch_size, progress=False)


def hf_trainer_seconds(cfg, corpus, steps, batch_size, bf16: bool) -> float:
    from transformers import Trainer, TrainingArguments

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

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = cl.build_model(cfg)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch_size, max_steps=steps, learning_rate=cl.default_lr(cfg),
            lr_scheduler_type="cosine", warmup_steps=max(1, steps // 20), weight_decay=0.1, adam_beta2=0.95,
            max_grad_norm=1.0, bf16=bf16, use_cpu=not torch.cuda.is_available(), save_strategy="no", report_to=[],
            logging_strategy="no", disable_tqdm=True, log_level="error", dataloader_num_workers=0, seed=0,
        )
        trainer = Trainer(model=model, args=args, train_dataset=Rows())
        start = time.perf_counter()
        trainer.train()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="+", default=["64x2", "256x4"])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    device = cl.detect_device()
    amp = cl.autocast_dtype(device)
    corpus = cl.load_corpus("synthetic")
    precision = "bf16" if amp is not None else "fp32"
    peak = cl.measure_peak_flops(device, amp or torch.float32)
    print(f"device {cl.device_name(device)} ({torch.get_num_threads()} threads); peak matmul {precision} "
          f"{peak / 1e9:.0f} GFLOP/s; batch {args.batch_size} x {args.seq_len} tokens, {args.steps} steps")
    print(f"targets: >= {TARGET_VS_BF16:.1f}x Trainer bf16=True, >= {TARGET_VS_DEFAULTS:.1f}x Trainer defaults\n")
    print(f"{'params':>10} {'cl.train tok/s':>15} {'vs Trainer (defaults)':>22} {'vs Trainer bf16=True':>21} "
          f"{'cl.train MFU':>13} {'evals':>6}")
    tokens = args.steps * args.batch_size * args.seq_len
    for text in args.shapes:
        cfg = shape(text, corpus, args.seq_len)
        # Warm-up of both (imports, first-use caches such as the corpus's entropy floor), not timed.
        cot_lab_run(cfg, corpus, 2, args.batch_size)
        hf_trainer_seconds(cfg, corpus, 2, args.batch_size, bf16=False)
        run = cot_lab_run(cfg, corpus, args.steps, args.batch_size)
        ours = tokens / run.wall_s
        hf = tokens / hf_trainer_seconds(cfg, corpus, args.steps, args.batch_size, bf16=False)
        hf_bf16 = (tokens / hf_trainer_seconds(cfg, corpus, args.steps, args.batch_size, bf16=True)
                   if amp is not None else float("nan"))
        mark = lambda ratio, target: f"{ratio:.2f}x {'ok' if ratio >= target else 'MISS'}"  # noqa: E731
        print(f"{cl.count_params(cfg).total:>10,} {ours:>15,.0f} {mark(ours / hf, TARGET_VS_DEFAULTS):>22} "
              f"{mark(ours / hf_bf16, TARGET_VS_BF16):>21} {ours * cl.flops_per_token(cfg) / peak:>13.1%} "
              f"{len(run.val_curve):>6}", flush=True)


if __name__ == "__main__":
    main()
