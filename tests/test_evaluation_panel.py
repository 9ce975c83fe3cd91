"""Notebook 07's panels and figures on the shipped set: the contamination slider changes the detector's verdict,
the shift selector and the gate panel read the shipped per-document losses, and every figure is readable."""
import numpy as np
import pytest

import cot_lab as cl
from cot_lab.evaluation import pilot, plots, results as R
from cot_lab.evaluation.panel import ContaminationPanel, GatePanel, ShiftPanel
from cot_lab.ui.figure_check import assert_readable


@pytest.fixture(scope="module")
def shipped():
    return R.load_evaluation_results()


@pytest.fixture(scope="module")
def corpus():
    return cl.load_corpus(pilot.CORPUS)


def test_contamination_slider_changes_the_verdict_and_the_readout(shipped, corpus, tmp_path):
    panel = ContaminationPanel(shipped, corpus, cl.RunStore(tmp_path / "store"))
    clean = panel.set(0)
    assert clean["verdict"].startswith("clean:") and "clean:" in panel.verdict_html.value
    dirty = panel.set(16)
    assert dirty["verdict"].startswith("contaminated: 32 of the 288 validation rows")
    assert "contaminated:" in panel.verdict_html.value and panel.last_error is None
    assert dirty["gap"] == pytest.approx(R.planted_gap(R.by_copies(shipped, 16)))
    assert f"{dirty['planted_loss']:.3f}" in panel.readout_html.value
    assert len(panel.plot.outputs) == 1 and "image/png" in panel.plot.outputs[0]["data"]


def test_shift_panel_shows_each_view(shipped):
    panel = ShiftPanel(shipped)
    for view in R.SHIFT_VIEWS:
        table = panel.set(view)
        assert list(table.index) == ["in distribution", "shifted"]
        assert f"{table.loc['shifted', 'excess']:.3f}" in panel.readout_html.value
        np.testing.assert_allclose(table.excess, table.loss - table.floor)


def test_gate_panel_follows_candidate_and_tolerance(shipped):
    panel = GatePanel(shipped, ["common topics only", "twice the compute"], tolerance=0.005)
    assert not panel.report().passed and "❌" in panel.summary_html.value
    assert panel.set(tolerance=0.01).passed and "✅" in panel.summary_html.value
    assert panel.set("twice the compute", 0.005).passed
    with pytest.raises(ValueError, match="is not a shipped run"):
        GatePanel(shipped, ["no such run"])
    with pytest.raises(ValueError, match="candidates is empty"):
        GatePanel(shipped, [])
    with pytest.raises(ValueError, match="tolerance"):
        GatePanel(shipped, ["twice the compute"], tolerance=0.003)


def test_contamination_panel_refuses_a_corpus_name(shipped):
    with pytest.raises(ValueError, match="corpus must be a cot_lab corpus"):
        ContaminationPanel(shipped, "synthetic-v3")


def test_figures_are_readable(shipped):
    record = R.by_copies(shipped, 16)
    gaps = {r["copies"]: R.planted_gap(r) for r in shipped["contamination"]}
    assert_readable(plots.contamination_curves(record["history"], floors=R.row_floors(shipped), gaps=gaps,
                                               copies=16))
    memo = shipped["memorisation"]
    assert_readable(plots.memorisation_plot(R.memorisation_frame(shipped), fit=R.memorisation_fit(shipped),
                                            suffix=memo["suffix"], prefix=memo["prefix"]))
    assert_readable(plots.junk_costs(R.junk_frame(shipped)))
    assert_readable(plots.shift_bars(R.shift_table(shipped, "held-out topics")))
    assert_readable(plots.gate_forest(R.gate_report(shipped, "common topics only", tolerance=0.005)))
    rng = np.random.default_rng(0)
    jaccard = rng.uniform(0.3, 1.0, 200)
    assert_readable(plots.dedup_found(jaccard, rng.random(200) < jaccard ** 4, bands=14, rows=8))
    with pytest.raises(ValueError, match="history is empty"):
        plots.contamination_curves([], floors=R.row_floors(shipped), gaps=gaps, copies=16)
