"""Notebook 02 with its exercises answered: the checkers agree with the numbers the notebook computed."""
import re

from test_notebooks import NOTEBOOK_DIR, assert_clean, execute, html_outputs, smoke_env, stream_text  # noqa: F401

PATH = NOTEBOOK_DIR / "02_scaling_laws.ipynb"


def test_scaling_laws_exercises_answered(smoke_env):  # noqa: F811
    nb = execute(PATH, replace={
        "best_size_at_largest_budget = None": "best_size_at_largest_budget = float(fit.approach2['N_opt'][-1])",
        "growth_for_100x = None": "growth_for_100x = 10.0",
        "my_loss_prediction = None": "my_loss_prediction = closing_law.loss(closing_pred['n_params'], closing_pred['tokens'])",
    }, append="print('__result__', closing_run.final_val_loss, closing_pred['predicted_loss'], closing_run.status)\n"
              "print('__seeds__', *seed_losses)\n"
              "print('__frontier__', *frontier_table['run - law'])")
    assert_clean(nb)
    verdicts = [h for h in html_outputs(nb) if "cot-lab-check" in h]
    assert len(verdicts) == 3 and all("✅" in v for v in verdicts), verdicts
    measured, predicted, status = re.search(r"__result__ (\S+) (\S+) (\S+)", stream_text(nb)).groups()
    assert status == "ok" and float(measured) > 0 and float(predicted) > 0
    text = stream_text(nb)
    assert "profile 'smoke'" in text and "runs at budgets" in text
    assert re.search(r"Approach 3: L\(N, D\) = [0-9.]+ \+ .*\n\s+a = 0\.\d+, 90% interval", text)
    # section 9: the shipped law's optimum sits above the best runs at the top budgets (the miss the notebook explains)
    gaps = [float(x) for x in re.search(r"__frontier__ (.+)", text).group(1).split()]
    assert len(gaps) == 5 and gaps[-1] < -0.1 and gaps[-2] < -0.02
    # three seeds of one shipped run: seed 0 is the shipped loss, seeds 1 and 2 really differ from it
    seeds = [float(x) for x in re.search(r"__seeds__ (.+)", text).group(1).split()]
    assert len(seeds) == 3 and all(3.0 < x < 4.5 for x in seeds)
    assert max(seeds) - min(seeds) > 0.005
