"""The synthetic language checked as an outsider would: more compute keeps buying loss, and no model beats the floor."""
import math

import pytest

import cot_lab as cl

BUDGETS = [1e10, 1e11, 1e12, 1e13]  # three decades of training FLOPs


@pytest.mark.slow
def test_ten_times_the_budget_lowers_the_loss_over_three_decades(synthetic):
    floor, floor_se = synthetic.entropy_for(128)
    losses = []
    for flops in BUDGETS:
        n_params = math.sqrt(flops / 120)  # ~20 tokens per parameter (C = 6 N D, D = 20 N)
        cfg = cl.preset(max(n_params, 1.5e4), vocab_size=synthetic.vocab_size, seq_len=128)
        run = cl.train(cfg, synthetic, flops=flops, batch_size=16, progress=False, eval_sequences=64)
        assert run.status == "ok"
        losses.append(run.final_val_loss)
    print("losses", [round(x, 4) for x in losses], "floor", round(floor, 4))
    for smaller, bigger in zip(losses, losses[1:]):
        assert bigger < smaller - 0.02, losses  # each decade buys a clear step down
    assert min(losses) > floor + 3 * floor_se  # nothing beats the exact floor
    assert losses[-1] - floor > 0.1  # and the largest budget here is still far from it: room to scale
