"""The pruning panel of notebook 03: a sparsity slider and a method picker over a trained model (core ipywidgets).

Each change prunes a fresh copy of the model and measures it on this device: validation loss, size on
disk (dense safetensors, and a bitmask sparse format), latency to score a batch and to generate tokens,
each next to the dense model's. The two latencies of a row are timed side by side in the same interleaved
rounds (`latencies`), never against a dense timing from earlier. Errors are shown in the panel (ipywidgets
would hide them in a log).
"""
from __future__ import annotations

import copy
import dataclasses

import ipywidgets as W

from cot_lab.data.base import Corpus
from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES
from cot_lab.ui.format import kib
from cot_lab.ui.panel import Panel, css_classes
from cot_lab.compress.metrics import Measurement, latencies, measure
from cot_lab.compress.pruning import prune
from cot_lab.compress.record import pruning_report

PANEL_METHODS = (("magnitude (per matrix)", ("magnitude", "layer")), ("magnitude (global)", ("magnitude", "global")),
                 ("wanda (per row)", ("wanda", "row")), ("heads", ("heads", None)), ("mlp neurons", ("mlp", None)))


class PrunePanel(Panel):
    """Sparsity slider + method dropdown; `.update()` prunes a copy and fills the table (also called on change)."""

    def __init__(self, model, corpus: Corpus, *, n_sequences: int = DEFAULT_EVAL_SEQUENCES, repeats: int = 5,
                 n_tokens: int = 16):
        if not isinstance(corpus, Corpus):
            raise ValueError(f"corpus={corpus!r} must be a corpus from cl.load_corpus(...)")
        self.model, self.corpus = model, corpus
        self.n_sequences = n_sequences
        self.timing_kw = dict(repeats=repeats, warmup=2, n_tokens=n_tokens, batch_size=8)
        self.dense: Measurement = measure(model, corpus, n_sequences=n_sequences, latency=False)  # timed in update()
        self.pruned_model = None
        self.last: Measurement | None = None
        style = {"description_width": "90px"}
        self.sparsity = W.FloatSlider(value=0.5, min=0.0, max=0.9, step=0.05, description="sparsity",
                                      continuous_update=False, readout_format=".2f", style=style,
                                      layout=W.Layout(width="420px"))
        self.method = W.Dropdown(options=list(PANEL_METHODS), value=PANEL_METHODS[0][1], description="method",
                                 style=style)
        self.table = W.HTML()
        self.status = W.HTML()
        super().__init__([W.HBox([self.sparsity, self.method]), self.table, self.status, self.details])
        css_classes((self, "prune-panel"), (self.sparsity, "sparsity"), (self.method, "method"), (self.table, "table"), (self.status, "status"))
        self._setting = False
        self.sparsity.observe(self.guard(self._on_change), names="value")
        self.method.observe(self.guard(self._on_change), names="value")
        self.update()

    def _on_change(self, _change) -> None:
        if not self._setting:  # set() moves both controls, then measures once
            self.update()

    def set(self, sparsity: float, method: str) -> Measurement | None:
        """Move the controls (method: a label of PANEL_METHODS) and return the new measurement."""
        labels = dict(PANEL_METHODS)
        if method not in labels:
            raise ValueError(f"method={method!r} is not in the panel; use one of {list(labels)}")
        self._setting = True
        try:
            self.sparsity.value = sparsity
            self.method.value = labels[method]
        finally:
            self._setting = False
        self.update()
        return self.last

    def update(self) -> None:
        """Prune a fresh copy at the current settings and measure it (an error shows in the status line)."""
        self.guard(self._update)()

    def _update(self) -> None:
        method, scope = self.method.value
        rounds = self.timing_kw["repeats"]
        self.status.value = (f"⏳ pruning a copy and measuring it: validation loss, then {rounds} timed rounds "
                             "of dense and pruned side by side…")
        pruned = prune(copy.deepcopy(self.model), self.sparsity.value, method, corpus=self.corpus, scope=scope)
        measured = measure(pruned, self.corpus, n_sequences=self.n_sequences, latency=False)
        timed = latencies({"dense": self.model, "pruned": pruned}, **self.timing_kw)  # side by side, this moment
        self.dense = dataclasses.replace(self.dense, **timed["dense"])
        self.pruned_model, self.last = pruned, dataclasses.replace(measured, **timed["pruned"])
        self.table.value = self._table(pruning_report(pruned).attrs["achieved"])
        self.clear_error()  # also empties the "measuring" line

    def on_error(self, error: BaseException) -> None:
        self.table.value = ""  # the table of the previous setting would be read as this one's

    def _table(self, achieved: float) -> str:
        d, p = self.dense, self.last
        rows = [("validation loss (nats/token)", f"{d.val_loss:.4f}", f"{p.val_loss:.4f}",
                 f"{p.val_loss - d.val_loss:+.4f}"),
                ("parameters", f"{d.params:,}", f"{p.params:,}", f"× {p.params / d.params:.2f}"),
                ("safetensors file", kib(d.disk_bytes), kib(p.disk_bytes), f"× {p.disk_bytes / d.disk_bytes:.2f}"),
                ("bitmask sparse format (estimate)", kib(d.bitmask_bytes), kib(p.bitmask_bytes),
                 f"× {p.bitmask_bytes / d.bitmask_bytes:.2f}"),
                ("score a batch (median)", f"{d.score_s * 1e3:.2f} ms", f"{p.score_s * 1e3:.2f} ms",
                 f"× {p.score_s / d.score_s:.2f}"),
                ("generate tokens (median)", f"{d.generate_s * 1e3:.1f} ms", f"{p.generate_s * 1e3:.1f} ms",
                 f"× {p.generate_s / d.generate_s:.2f}")]
        cells = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td><td>{r}</td></tr>" for a, b, c, r in rows)
        return (f"<p>achieved sparsity <b>{achieved:.3f}</b> of the block weights / heads / neurons</p>"
                f'<table class="cot-lab-measure"><tr><th></th><th>dense</th><th>pruned</th><th>ratio</th></tr>'
                f"{cells}</table>")


def prune_panel(model, corpus: Corpus, **kw) -> PrunePanel:
    """A PrunePanel over `model` (left untouched: every setting prunes a copy)."""
    return PrunePanel(model, corpus, **kw)
