"""Notebook 07's panels: a contamination slider (copies planted -> losses over training and the detector's verdict),
a shift selector (in- and out-of-distribution losses against their exact floors), and the regression gate.
"""
from __future__ import annotations

import html

import ipywidgets as W

from cot_lab.core import validate
from cot_lab.core.accounting import count_params
from cot_lab.core.runs import Run, RunStore
from cot_lab.core.speed import expected_seconds
from cot_lab.data import Corpus
from cot_lab.evaluation import pilot, results as R
from cot_lab.evaluation.plots import contamination_curves, gate_forest, shift_bars
from cot_lab.ui.action import LongAction, TrainProgress, unfinished_run
from cot_lab.ui.figures import figure_display_data
from cot_lab.ui.panel import Panel, css_classes

STYLE = dict(style={"description_width": "170px"}, layout=W.Layout(width="520px"))


class ContaminationPanel(Panel):
    """A slider over the shipped copies settings (`load_evaluation_results()`): the planted and clean rows' loss
    over training, the gap against copies, the 13-gram detector's verdict, membership and memorisation. The button
    trains the setting for real (or brings it back from the store) at `flops` (default: the study's budget)."""

    def __init__(self, results: dict, corpus: Corpus, store: RunStore | None = None, *, flops: float | None = None):
        if not isinstance(corpus, Corpus):
            raise ValueError(f"corpus must be a cot_lab corpus from cl.load_corpus(...) (got {type(corpus).__name__})")
        self.results, self.corpus = results, corpus
        self.store = RunStore() if store is None else store
        self.flops = pilot.STUDY_FLOPS if flops is None else validate.number("flops", flops, hint="FLOPs, e.g. 2e12")
        self.floors = R.row_floors(results)
        self.gaps = {r["copies"]: R.planted_gap(r) for r in results["contamination"]}
        options = sorted(self.gaps)
        self.copies = W.SelectionSlider(options=options, value=options[0], description="copies planted (each row)",
                                        continuous_update=True, **STYLE)
        self.verdict_html, self.readout_html, self.plot = W.HTML(), W.HTML(), W.Output()
        self.button = W.Button(description="Train this setting", icon="play", button_style="primary")
        self.action = LongAction(self, self.button, name="training")
        self.copies.observe(self.guard(lambda _: self._refresh()), names="value")
        self.button.on_click(self.guard(lambda _: self.action.start(*self._training())))
        super().__init__([self.copies, self.verdict_html, self.readout_html, self.action.widget, self.status,
                          self.plot])
        css_classes((self, "contamination-panel"), (self.copies, "copies"), (self.verdict_html, "verdict"),
                    (self.readout_html, "contamination-readout"), (self.button, "train"), (self.plot, "output"))
        self._refresh()

    def readout(self) -> dict:
        """The setting under the slider: copies, final planted and clean losses (nats/token), their gap, the
        membership AUCs, the exact-match rates and the detector's verdict."""
        record = R.by_copies(self.results, int(self.copies.value))
        row = R.contamination_frame(dict(contamination=[record])).iloc[0].to_dict()
        return dict(copies=record["copies"], verdict=R.verdict(record), **row)

    def set(self, copies: int) -> dict:
        """Move the slider as a student would; returns `readout()`."""
        self.copies.value = copies
        return self.readout()

    def _refresh(self, history=None) -> None:
        r = self.readout()
        contaminated = r["flagged"] > 0
        self.verdict_html.value = (f"<b>{'⚠️' if contaminated else '✅'} 13-gram detector:</b> "
                                   f"{html.escape(r['verdict'])}")
        self.readout_html.value = (
            f"planted rows <b>{r['planted_loss']:.3f}</b>, clean rows <b>{r['clean_loss']:.3f}</b> nats/token "
            f"(their exact floors {self.floors['planted']:.3f} and {self.floors['clean']:.3f}): gap <b>{r['gap']:+.3f}</b>. Membership from the loss: AUC "
            f"<b>{r['auc_loss']:.2f}</b> (Min-K% {r['auc_min_k']:.2f}; 0.5 is chance). Greedy decoding reproduces "
            f"<b>{r['exact_match_planted']:.0%}</b> of the planted rows' continuations exactly "
            f"(clean rows: {r['exact_match_clean']:.0%}).")
        record = R.by_copies(self.results, r["copies"])
        fig = contamination_curves(history or record["history"], floors=self.floors, gaps=self.gaps,
                                   copies=r["copies"], title=None if history is None else
                                   f"{r['copies']} copies, trained now")
        self.plot.outputs = (figure_display_data(fig),)

    def train(self) -> Run:
        """Train the setting under the slider (a real run, or the stored one), as the button does; returns the Run."""
        return self.action.run(*self._training())

    def _training(self):
        copies = int(self.copies.value)
        cfg = pilot.study_config(self.corpus.vocab_size)

        def job(ctx):
            self.status.value = f"training with {copies} copies of each planted row · <b>Stop</b> keeps it"
            return pilot.run_contamination(self.corpus, self.store, copies, flops=self.flops, stop=ctx.stop,
                                           callbacks=[TrainProgress(ctx)])

        return job, expected_seconds(self.store, count_params(cfg).total, self.flops), self._finished

    def _finished(self, result) -> str:
        run, history = result
        if run.status != "ok":
            return unfinished_run(self.status, run)
        last = history[-1] if history else {}
        self.status.value = html.escape(
            f"{'📦 from the store' if run.from_store else '✅ trained'} at {self.flops:.0e} FLOPs: planted rows "
            f"{last.get('planted', float('nan')):.3f}, clean rows {last.get('clean', float('nan')):.3f} nats/token")
        if history:
            self._refresh(history)
        return "from the store" if run.from_store else f"done: {run.steps:,} steps"


class ShiftPanel(Panel):
    """A selector over `results.SHIFT_VIEWS`: the tested run's loss in and out of distribution against the exact
    floor of the same documents and against a perfect model of the unshifted language."""

    def __init__(self, results: dict):
        self.results = results
        self.view = W.Dropdown(options=list(R.SHIFT_VIEWS), value=next(iter(R.SHIFT_VIEWS)), description="shift",
                               **STYLE)
        self.readout_html, self.plot = W.HTML(), W.Output()
        self.view.observe(self.guard(lambda _: self._refresh()), names="value")
        super().__init__([self.view, self.readout_html, self.status, self.plot])
        css_classes((self, "shift-panel"), (self.view, "shift"), (self.readout_html, "shift-readout"),
                    (self.plot, "output"))
        self._refresh()

    def table(self):
        return R.shift_table(self.results, self.view.value)

    def set(self, view: str):
        """Choose a shift as a student would; returns `table()`."""
        self.view.value = view
        return self.table()

    def _refresh(self) -> None:
        t = self.table()
        spec = R.SHIFT_VIEWS[self.view.value]
        inside, shifted = t.loc["in distribution"], t.loc["shifted"]
        price = shifted["unshifted"] - shifted["floor"]
        self.readout_html.value = html.escape(
            f"{spec['about']}. The model ({spec['run']}) is {inside['excess']:.3f} nats/token above the floor in "
            f"distribution and {shifted['excess']:.3f} above it shifted; even a perfect model of the training "
            f"language would pay {price:.3f} on the shifted documents.")
        self.plot.outputs = (figure_display_data(shift_bars(t, title=f"{self.view.value}: loss against the floor")),)


class GatePanel(Panel):
    """A candidate selector and a tolerance slider: the evaluation gate against the clean run on the shipped
    per-document losses, as a forest plot and a sentence."""

    TOLERANCES = (0.0, 0.005, 0.01, 0.02, 0.05)

    def __init__(self, results: dict, candidates: list[str], *, tolerance: float = 0.01):
        if tolerance not in self.TOLERANCES:
            raise ValueError(f"tolerance={tolerance!r} must be one of the slider's {self.TOLERANCES} (nats/token)")
        if not candidates:
            raise ValueError("candidates is empty: name runs of the shipped results, e.g. ['16 copies']")
        self.results = results
        for name in candidates:
            R.run_record(results, name)  # a bad name fails here, with the list of shipped ones
        self.candidate = W.Dropdown(options=candidates, value=candidates[0], description="candidate", **STYLE)
        self.tolerance = W.SelectionSlider(options=list(self.TOLERANCES), value=tolerance,
                                           description="tolerance (nats/token)", continuous_update=True, **STYLE)
        self.summary_html, self.plot = W.HTML(), W.Output()
        for widget in (self.candidate, self.tolerance):
            widget.observe(self.guard(lambda _: self._refresh()), names="value")
        super().__init__([self.candidate, self.tolerance, self.summary_html, self.status, self.plot])
        css_classes((self, "gate-panel"), (self.candidate, "candidate"), (self.tolerance, "tolerance"),
                    (self.summary_html, "gate-summary"), (self.plot, "output"))
        self._refresh()

    def report(self):
        return R.gate_report(self.results, self.candidate.value, tolerance=float(self.tolerance.value))

    def set(self, candidate: str | None = None, tolerance: float | None = None):
        """Choose as a student would; returns `report()`."""
        if candidate is not None:
            self.candidate.value = candidate
        if tolerance is not None:
            self.tolerance.value = tolerance
        return self.report()

    def _refresh(self) -> None:
        report = self.report()
        self.summary_html.value = f"<b>{'✅' if report.passed else '❌'}</b> {html.escape(report.summary())}"
        self.plot.outputs = (figure_display_data(gate_forest(report, title=f"{self.candidate.value} against the "
                                                                             f"clean run")),)
