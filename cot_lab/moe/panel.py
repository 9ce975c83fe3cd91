"""Notebook 06's router health panel: sliders for experts, top-k and the balance-loss coefficient over the shipped
router study; the load histogram at the end of training and the balance over training. The button trains the
exact setting for real (or brings it back from the store) with the router watched.
"""
from __future__ import annotations

import html

import ipywidgets as W
import numpy as np

from cot_lab.core import validate
from cot_lab.core.accounting import count_params
from cot_lab.core.runs import Run, RunStore
from cot_lab.core.speed import expected_seconds
from cot_lab.data import Corpus
from cot_lab.moe.plots import router_load
from cot_lab.moe.router import RouterStats
from cot_lab.ui.action import LongAction, TrainProgress, unfinished_run
from cot_lab.ui.figures import figure_display_data
from cot_lab.ui.panel import Panel, css_classes


class RouterPanel(Panel):
    """Experts, top-k and coefficient sliders over `studies` (`load_moe_pilot()["router"]`): the chosen run's expert
    load per layer and its balance over training, the same router at the other coefficients dotted beside it.
    flops, every: the button's run (default: the shipped study's budget and measurement interval)."""

    def __init__(self, studies, corpus: Corpus, store: RunStore | None = None, *, flops: float | None = None,
                 every: int | None = None):
        if not studies:
            raise ValueError("studies is empty: pass load_moe_pilot()['router'] (one dict per router run)")
        if not isinstance(corpus, Corpus):
            raise ValueError(f"corpus must be a cot_lab corpus from cl.load_corpus(...) (got {type(corpus).__name__})")
        from cot_lab.moe.pilot import ROUTER_EVERY, ROUTER_FLOPS

        self.corpus, self.store = corpus, RunStore() if store is None else store
        self.flops = ROUTER_FLOPS if flops is None else validate.number("flops", flops, hint="FLOPs, e.g. 2.5e11")
        self.every = ROUTER_EVERY if every is None else validate.integer("every", every, hint="steps, e.g. 100")
        self.studies = {(s["n_experts"], s["top_k"], float(s["aux_loss_coef"])): s for s in studies}
        experts, top_ks, coefs = (sorted({k[i] for k in self.studies}) for i in range(3))
        style = dict(style={"description_width": "150px"}, layout=W.Layout(width="460px"), continuous_update=True)
        self.experts = W.SelectionSlider(options=experts, value=experts[len(experts) // 2], description="experts", **style)
        self.top_k = W.SelectionSlider(options=top_ks, value=top_ks[-1], description="top-k (experts per token)", **style)
        self.coef = W.SelectionSlider(options=[(f"{c:g}", c) for c in coefs], value=coefs[-1],
                                      description="balance-loss coefficient", **style)
        self.readout_html, self.plot, self.status = W.HTML(), W.Output(), W.HTML()
        self.button = W.Button(description="Train this setting", icon="play", button_style="primary")
        self.action = LongAction(self, self.button, name="training")
        for widget in (self.experts, self.top_k, self.coef):
            widget.observe(self.guard(lambda _: self._refresh()), names="value")
        self.button.on_click(self.guard(lambda _: self.action.start(*self._training())))
        super().__init__([self.experts, self.top_k, self.coef, self.readout_html, self.action.widget, self.status,
                          self.plot])
        css_classes((self, "router-panel"), (self.experts, "experts"), (self.top_k, "top-k"), (self.coef, "coef"),
                    (self.readout_html, "router-readout"), (self.button, "train"), (self.plot, "output"))
        self._refresh()

    def key(self) -> tuple:
        return int(self.experts.value), int(self.top_k.value), float(self.coef.value)

    def readout(self) -> dict:
        """The chosen run: final loss (nats/token), the balance loss at the end (mean over layers; 1 if the load is
        even), the load entropy over ln n_experts (1 if even), the busiest expert's share, dead expert-layers, the
        share over a 1.25 capacity factor."""
        study = self.studies[self.key()]
        last = RouterStats.from_record(study["history"][-1])
        return dict(n_experts=study["n_experts"], top_k=study["top_k"], aux_loss_coef=study["aux_loss_coef"],
                    loss=study["run"].final_val_loss, balance_loss=float(np.mean(last.balance_loss)),
                    max_load=float(last.load.max()), dead=sum(len(d) for d in last.dead_experts),
                    overflow=float(np.mean(last.overflow)), z_loss=float(np.mean(last.z_loss)),
                    load_entropy=float(np.mean(last.load_entropy)) / np.log(study["n_experts"]))

    def set(self, *, n_experts: int | None = None, top_k: int | None = None, coef: float | None = None) -> dict:
        """Move the sliders as a student would; returns `readout()`."""
        for widget, value in ((self.experts, n_experts), (self.top_k, top_k), (self.coef, coef)):
            if value is not None:
                widget.value = value
        return self.readout()

    def _refresh(self, history=None) -> None:
        r = self.readout()
        self.readout_html.value = (
            f"{r['n_experts']} experts, top-{r['top_k']}, coefficient {r['aux_loss_coef']:g}: loss <b>{r['loss']:.4f}</b>"
            f" nats/token; balance loss at the end <b>{r['balance_loss']:.3f}</b> (1 if the load is even); load entropy "
            f"{r['load_entropy']:.0%} of its even maximum; the busiest expert takes "
            f"{r['max_load']:.0%} of the assignments (even: {1 / r['n_experts']:.0%}); {r['dead']} dead expert-layers; "
            f"{r['overflow']:.1%} of assignments over a capacity factor of 1.25.")
        study = self.studies[self.key()]
        others = {f"coefficient {c:g}": s["history"] for (e, k, c), s in self.studies.items()
                  if (e, k) == self.key()[:2] and c != self.key()[2]}
        fig = router_load(history or study["history"], n_experts=r["n_experts"], others=others,
                          title=f"balance over training ({'trained now' if history else 'shipped run'})")
        self.plot.outputs = (figure_display_data(fig),)

    def train(self) -> Run:
        """Train the setting under the sliders (a real run, or the stored one), as the button does; returns the Run."""
        return self.action.run(*self._training())

    def _training(self):
        from cot_lab.moe.pilot import router_config, train_router_run

        n_experts, top_k, coef = self.key()
        cfg = router_config(n_experts, top_k, self.corpus.vocab_size)

        def job(ctx):
            self.status.value = f"training {n_experts} experts, top-{top_k}, coefficient {coef:g} · <b>Stop</b> keeps it"
            return train_router_run(self.corpus, self.store, n_experts, top_k, coef, flops=self.flops,
                                    every=self.every, stop=ctx.stop,
                                    callbacks=[TrainProgress(ctx)])

        return job, expected_seconds(self.store, count_params(cfg).total, self.flops), self._finished

    def _finished(self, result) -> str:
        run, history = result
        if run.status != "ok":
            return unfinished_run(self.status, run)
        self.status.value = html.escape(f"{'📦 from the store' if run.from_store else '✅ trained'}: loss "
                                        f"{run.final_val_loss:.4f} nats/token")
        if history:
            self._refresh(history)
        return "from the store" if run.from_store else f"done: {run.steps:,} steps"
