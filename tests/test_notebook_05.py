"""Notebook 05 with its exercises answered and its buttons pressed (smoke budgets): the checkers agree."""
import re

from test_notebooks import NOTEBOOK_DIR, answered_text, smoke_env  # noqa: F401

PATH = NOTEBOOK_DIR / "05_batch_size_and_learning_rate.ipynb"

# The notebook's buttons train at the shipped budget (minutes); pressed here at a few seconds' worth.
PRESS = """
smoke_lr = LearningRatePanel(lr_frame, your_law, corpus, store, flops=2e10, batch_size=2, beta2=BETA2,
                             eval_sequences=P.eval_sequences)
measured = smoke_lr.train()
print('__lr__', measured.status, measured.hparams['lr'] == smoke_lr.readout()['lr'])
smoke_noise = NoiseScalePanel(pilot_config(corpus.vocab_size), corpus, flops=2e10, batch_size=2, every=20, store=store,
                              eval_sequences=P.eval_sequences)
live = smoke_noise.train()
print('__noise__', live.status, len(smoke_noise.hook.history))
"""

# Each answer worked out as a student would, from the exercise's own numbers.
ANSWERS = {
    "my_multiplier = None": (
        "_r = lr_panel.readout(); "
        "my_multiplier = (1 + 0.03 * _r['tokens'] ** your_law.beta / your_law.B) ** (1 / your_law.beta)"),
    # S = S_min + E_min / B at B = 4 and 16: E_min (1/4 - 1/16) = 1800, S_min = 3000 - E_min / 4
    "my_critical_batch = None": "_e = 1800 / (1 / 4 - 1 / 16); my_critical_batch = _e / (3000 - _e / 4)",
    "my_deepseek_sequences = None": "my_deepseek_sequences = 0.2920 * BUDGET ** 0.3271 / SEQ_LEN",
}


def test_batch_and_lr_exercises_answered_and_buttons_pressed(smoke_env):  # noqa: F811
    text = answered_text(PATH, ANSWERS, PRESS, n_checks=3)
    assert re.search(r"the worst rate tried \([0-9.e-]+\) is 0\.\d+ nats/token behind the best, and that costs "
                     r"\d+\.\d\dx the budget", text), text
    assert re.search(r"B_simple along the shipped run: [0-9,]+ tokens after", text)
    assert re.search(r"DeepSeek's law is extrapolated 5 decades below its fitted budgets", text)
    status, same_rate = re.search(r"__lr__ (\S+) (\S+)", text).groups()
    assert (status, same_rate) == ("ok", "True")
    status, measurements = re.search(r"__noise__ (\S+) (\d+)", text).groups()
    assert status == "ok" and int(measurements) >= 2
    # section 5 prints the verdict read off the shipped width set (tests/test_width_transfer.py checks the set)
    assert re.search(r"standard: from d_model 32 to 128, the best rate (moves by|stays within) x\d\.\d\d", text), text
    assert re.search(r"mup: from d_model 32 to 128, the best rate (moves by|stays within) x\d\.\d\d", text), text
    assert re.search(r"best loss, standard minus muP \(nats/token\): d_model 32: [+-]0\.0000", text), text
