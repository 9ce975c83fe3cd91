"""Notebook 05's width-transfer set: what was planned was trained, muP equals the standard parametrisation at its base
width, every width's best rate is inside its grid, the coordinate checks say what muP promises, and the figures
and the verdict say what the numbers say."""
import json
import math
import shutil

import pandas as pd
import pytest

from cot_lab.hparams import plots
from cot_lab.hparams import width_pilot as wp
from cot_lab.hparams.width import growth_exponents, transfer_table, transfer_verdict
from cot_lab.ui.figure_check import assert_readable


@pytest.fixture(scope="module")
def shipped():
    return wp.load_width_pilot()


def test_every_planned_run_is_shipped_on_the_same_tokens(shipped):
    for name in wp.PARAMETRISATIONS:
        assert sorted(shipped[name]) == list(wp.WIDTHS)
        for width, sweep in shipped[name].items():
            rates = sweep.values()
            assert set(wp.LRS) <= {round(r, 12) for r in rates}  # and edge extensions
            for run in sweep.runs:
                assert run.config.d_model == width and run.config.n_head == width // 8
                assert run.status in ("ok", "diverged")
                assert run.hparams.get("mup_base_width") == wp.PARAMETRISATIONS[name]
                if run.status == "ok":
                    assert wp.TOKENS - 512 < run.tokens <= wp.TOKENS  # every width, the same data
                    assert run.val_curve[-1][0] == run.steps  # the final loss is measured at the end


def test_mup_at_the_base_width_is_the_standard_run(shipped):
    sp, mu = shipped["standard"][wp.BASE_WIDTH], shipped["mup"][wp.BASE_WIDTH]
    sp_loss = {round(r.hparams["lr"], 12): r.final_val_loss for r in sp.runs}
    for run in mu.runs:
        assert run.final_val_loss == pytest.approx(sp_loss[round(run.hparams["lr"], 12)], abs=1e-4)


def test_every_widths_best_rate_is_inside_its_grid(shipped):
    for name in wp.PARAMETRISATIONS:
        table = transfer_table(shipped[name])
        assert table.interior.all(), (name, table)


def test_shipped_coordinate_checks(shipped):
    mup, sp = growth_exponents(shipped["checks"]["mup"]), growth_exponents(shipped["checks"]["standard"])
    assert all(abs(e) < 0.25 for e in mup.values()), mup
    assert sp["block 1"] > 0.5 and sp["block 2"] > 0.5, sp


def test_a_changed_file_is_refused(tmp_path):
    copy = tmp_path / "set"
    shutil.copytree(wp.pilot_dir(), copy)
    data = json.loads((copy / "width.json").read_text())
    data["runs"]["mup"][0]["final_val_loss"] = 1.0
    (copy / "width.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="sha256"):
        wp.load_width_pilot(copy)


def test_verdict_reads_the_spread_of_the_best_rates():
    def table(rates):
        frame = pd.DataFrame(dict(width=[32, 64, 128], best_lr=rates, best_loss=[3.0] * 3, interior=[True] * 3))
        frame["octaves_from_narrowest"] = [math.log2(r / rates[0]) for r in rates]
        return frame
    text = transfer_verdict({"standard": table([8e-3, 4e-3, 2e-3]), "mup": table([8e-3, 9e-3, 7.5e-3])})
    assert "standard: from d_model 32 to 128, the best rate moves by x4.00 (2.00 octaves; the widest is 2.00 " \
           "octaves down from the narrowest): it does not transfer." in text
    assert "mup: from d_model 32 to 128, the best rate stays within x1.20 (0.26 octaves): it transfers." in text


def test_width_transfer_figure_stars_every_best_rate(shipped):
    sweeps = {name: shipped[name] for name in wp.PARAMETRISATIONS}
    fig = plots.width_transfer(sweeps)
    assert_readable(fig)
    for ax, name in zip(fig.axes, wp.PARAMETRISATIONS):
        stars = sorted(float(line.get_xdata()[0]) for line in ax.lines if line.get_marker() == "*")
        assert stars == pytest.approx(sorted(transfer_table(shipped[name]).best_lr))
    with pytest.raises(ValueError, match="sweeps"):
        plots.width_transfer({})


def test_coordinate_check_plot_labels_each_layers_exponent(shipped):
    fig = plots.coordinate_check_plot(shipped["checks"])
    assert_readable(fig)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    logits = growth_exponents(shipped["checks"]["mup"])["logits"]
    assert f"logits: ~ width^{logits:.2f}" in labels
    with pytest.raises(ValueError, match="checks"):
        plots.coordinate_check_plot({})
