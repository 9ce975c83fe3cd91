"""Notebook 04 with its exercises answered and its button pressed: the checkers agree with the notebook's numbers."""
import re

from test_notebooks import NOTEBOOK_DIR, answered_text, smoke_env  # noqa: F401

PATH = NOTEBOOK_DIR / "04_training_vs_inference_cost.ipynb"

# Pressing the pair's button, in the smoke profile: the same two models at a thousandth of their FLOPs (seconds).
PRESS = """
smoke_button = SweepButton(closing.pair_plan(pair, flops_scale=1e-3), cl.load_corpus(closing.CORPUS), store,
                           eval_sequences=P.eval_sequences, seeds=(0,))
live = smoke_button.run()
print('__pair__', len(live.runs), live.interrupted, sorted(r.n_params for r in live.runs),
      sorted(r.status for r in live.runs))
"""

# Each answer is worked out the way a student would, from the exercise's own numbers, not from the checker.
ANSWERS = {
    "my_inference_flops = None": "my_inference_flops = 2 * 1e9 * 1e9 * 285",
    "my_tokens_per_param = None": (
        "_answer = cl.lifetime_optimum(cl.CHINCHILLA, loss=target_7b, inference_tokens=1e10 * (70 + 215)); "
        "my_tokens_per_param = _answer.train_tokens / _answer.n_params"),
    "my_kv_bytes_per_token = None": (
        "_c = pair.chinchilla.config; "
        "my_kv_bytes_per_token = 2 * _c.n_layer * _c.n_kv_head * (_c.d_model // _c.n_head) * 4"),
    "my_break_even_requests = None": "my_break_even_requests = 6 * 7e9 * 20 * 7e9 / (2 * 7e9 * 285)",
}


def test_training_vs_inference_exercises_answered_and_button_pressed(smoke_env):  # noqa: F811
    text = answered_text(PATH, ANSWERS, PRESS, n_checks=4)
    # Sardana et al.'s worked example, printed by the notebook (tests/test_lifetime.py holds it to 0.5%)
    assert re.search(r"inference-aware \(2e12 tokens served\): 24\.1\dB on 2\.6[56]\dT", text), text
    assert re.search(r"Chinchilla-optimal for loss 1\.947: 34\.\d\dB parameters", text)
    assert "a generated token's FLOP costs 50 times a trained one" in text
    # serving was measured on both shipped models, and the break-even printed both ways
    bandwidth = float(re.search(r"memory bandwidth \(copy, read \+ write\): ([0-9.]+) GB/s", text).group(1))
    assert bandwidth > 0.1
    six_n, trainer, measured = map(float, re.search(
        r"break-even in served tokens: (\S+) from 6N/2N FLOPs, (\S+) from the trainer's FLOP count, (\S+) from "
        r"measured seconds", text).groups())
    assert 0 < six_n < float("inf") and 0 < measured
    # the runs' own FLOPs give the planned pair's break-even (tests/test_closing.py derives it by hand)
    assert re.search(r"target loss 3\.1999 nats/token; the smaller model is the cheaper to own past 6\.38e\+07 served "
                     r"tokens \(2\.24e\+05 requests of 285 tokens\); the law's lifetime optimum is the smaller rung "
                     r"itself from 6\.05e\+08", text), text
    assert abs(trainer / 6.38e7 - 1) < 0.02
    n_runs, interrupted, sizes, statuses = re.search(r"__pair__ (\d+) (\S+) (\[.*?\]) (\[.*?\])", text).groups()
    assert (int(n_runs), interrupted, sizes, statuses) == (2, "False", "[33192, 66848]", "['ok', 'ok']")
