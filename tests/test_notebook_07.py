"""Notebook 07 with its exercises answered and its button pressed (a smoke budget): the checkers agree and the
prose's numbers are printed beside it."""
import re

from test_notebooks import NOTEBOOK_DIR, answered_text, smoke_env  # noqa: F401

PATH = NOTEBOOK_DIR / "07_evaluation_and_data_quality.ipynb"

# The panel's button trains at the shipped study's budget (about half a minute here); pressed at a smoke budget.
PRESS = """
smoke_panel = ContaminationPanel(shipped, corpus, store, flops=2e10)
smoke_panel.set(4)
smoke_run, smoke_history = smoke_panel.train()
print('__contamination__', smoke_run.status, len(smoke_history), sorted(smoke_history[-1]))
"""

# Each answer worked out as a student would, another way than the checker's.
ANSWERS = {
    # one band agrees with probability 0.8^8; the pair is missed only if all 14 bands disagree
    "my_candidate_probability = None": "my_candidate_probability = 1 - (1 - 0.8 ** 8) ** 14",
    # from the slice means: the headline's total gain less the clean rows' total gain is the planted rows' gain
    "my_leak_share = None": (
        "_b, _c = R.by_copies(shipped, 0)['slices'], R.by_copies(shipped, 16)['slices']\n"
        "_head = 288 * (np.mean(_b['headline']) - np.mean(_c['headline']))\n"
        "my_leak_share = (_head - 256 * (np.mean(_b['clean']) - np.mean(_c['clean']))) / _head"),
    # from the shipped per-document exact losses (the checker scores the rows again with the generators)
    "my_shift_price = None": (
        "my_shift_price = np.mean(shipped['floors']['rare topics']['unshifted']) - "
        "np.mean(shipped['floors']['rare topics']['exact'])"),
}


def test_evaluation_exercises_answered_and_button_pressed(smoke_env):  # noqa: F811
    text = answered_text(PATH, ANSWERS, PRESS, n_checks=3)
    assert re.search(r"\d+ shipped runs of d_model 48 x 3 layers", text), text
    assert re.search(r"64 copies: planted rows \d\.\d{3}, clean rows \d\.\d{3} \(gap \+0\.\d{3}\)", text), text
    assert re.search(r"exact floor of the planted rows 2\.9\d{3} \(of the clean rows 2\.9\d{3}\): the planted rows. "
                     r"excess above it falls from 0\.\d{3} \(0 copies\) to 0\.\d{3} \(64 copies\)", text), text
    assert re.search(r" 64 copies: loss AUC \d\.\d\d, Min-K% AUC \d\.\d\d; above the clean run", text), text
    assert re.search(r"  1 copies: loss AUC \d\.\d\d, Min-K% AUC \d\.\d\d; no more than the clean run", text), text
    assert re.search(r"log-linear fit: \+0\.\d{3} ± 0\.\d{3} of the rows per tenfold copies", text), text
    assert re.search(r"planted pairs: found \d+% of those at or above the threshold 0\.719", text), text
    for kind in ("random", "shuffled", "boilerplate"):
        assert re.search(kind + r": 50% junk costs [+-]0\.\d{4} nats/token; filtered [+-]0\.\d{4}", text), text
    for view in ("rare topics", "deep nesting", "held-out topics"):
        assert re.search(view + r": excess above the floor 0\.\d{4} in distribution, 0\.\d{4} shifted", text), text
    assert re.search(r"out of distribution: the docs model is \+\d\.\d{3} nats/token worse on code", text), text
    assert re.search(r"common topics only at tolerance 0.005: Fails: .rare topics. is worse", text), text
    assert re.search(r"common topics only at tolerance 0.01: Passes", text), text
    assert re.search(r"twice the compute at tolerance 0.005: Passes", text), text
    assert "python-docs: licence 'PSF-2.0'" in text
    assert re.search(r"refused: .*licence", text), text
    status, measurements, names = re.search(r"__contamination__ (\S+) (\d+) (\[.*\])", text).groups()
    assert status == "ok" and int(measurements) >= 2 and "'planted'" in names and "'clean'" in names
