"""Notebook 02 with its exercises answered and its buttons pressed: the checkers agree with the notebook's numbers."""
import re

from test_notebooks import NOTEBOOK_DIR, assert_clean, execute, html_outputs, smoke_env, stream_text  # noqa: F401

PATH = NOTEBOOK_DIR / "02_scaling_laws.ipynb"

# What pressing the notebook's buttons does, in the smoke profile: its sweep, a size at one budget, and the
# held-out run at 4x the smoke sweep's largest budget (the notebook's own closing panel would train 4x the
# shipped laptop sweep, minutes of work).
PRESS = """
point = size_panel.train()
print('__size__', point.status, point.final_val_loss)
live = sweep_button.run()
print('__live__', len(live.runs), live.interrupted, len({r.hparams['seed'] for r in live.runs}))
smoke_budget = P.holdout_factor * max(P.sweep_budgets)
smoke_panel = SizeAtBudgetPanel(law, smoke_budget, corpus, store, seq_len=P.seq_len, eval_sequences=P.eval_sequences)
held = smoke_panel.train()
print('__held__', held.status, held.budget['value'], held.final_val_loss)
"""


def test_scaling_laws_exercises_answered_and_buttons_pressed(smoke_env):  # noqa: F811
    nb = execute(PATH, replace={
        "best_size_at_largest_budget = None": "best_size_at_largest_budget = float(fit.approach2['N_opt'][-1])",
        "growth_for_100x = None": "growth_for_100x = 10.0",
        "interval_contains_chinchilla = None": "interval_contains_chinchilla = bool(lo <= 0.5 <= hi)",
        "interval_excludes_kaplan = None": "interval_excludes_kaplan = not lo <= 0.73 <= hi",
        "e_above_floor = None": "e_above_floor = fit.approach3.E - floor",
        "my_loss_prediction = None": "my_loss_prediction = closing_law.loss(N, D)",
    }, append=PRESS)
    assert_clean(nb)
    verdicts = [h for h in html_outputs(nb) if "cot-lab-check" in h]
    assert len(verdicts) == 5 and all("✅" in v for v in verdicts), verdicts
    text = stream_text(nb)
    assert "profile 'smoke'" in text and "runs = " in text and "x 2 seeds" in text
    assert re.search(r"Approach 3: L\(N, D\) = [0-9.]+ \+ .*\n\s+a = 0\.\d+, 90% interval \[0\.\d+, 0\.\d+\] \(0 of 200", text)
    # the rate rises with width: lr* ~ d^+0.50 (recipe.py's -LR_WIDTH_EXPONENT), printed without a double sign
    assert re.search(r"lr = 5\.22e-03 x \(d_model / 32\)\^0\.50, beta2 = 0\.99, batch 4 sequences", text), text
    assert "(d_model / 32)^-" not in text
    # the shipped sweep's measured miss (tests/test_precomputed.py keeps it as a strict xfail), said where it is read
    assert re.search(r"Approach 2's a lies OUTSIDE Approach 3's interval, 0\.0\d\d beyond its edge", text)
    assert "no sweep of yours yet" in text  # Run All trains nothing: the sweep waits for its button
    status, loss = re.search(r"__size__ (\S+) (\S+)", text).groups()
    assert status == "ok" and 3.0 < float(loss) < 6.0
    n_runs, interrupted, n_seeds = re.search(r"__live__ (\d+) (\S+) (\d+)", text).groups()
    assert int(n_runs) == 9 and interrupted == "False" and n_seeds == "1"
    status, budget, loss = re.search(r"__held__ (\S+) (\S+) (\S+)", text).groups()
    assert status == "ok" and float(budget) == 1.2e11 and float(loss) > 0
