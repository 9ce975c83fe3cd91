"""A trainer callback that draws the loss curve live into an ipywidgets Output, with a progress bar.

The figure is rendered to PNG and put into the Output's `outputs` directly (what
`clear_output(wait=True); display(fig)` would send), which also works outside a kernel, so
tests can see it. Redraws are throttled: drawing costs ~50 ms, a tiny model's step ~10 ms.
"""
from __future__ import annotations

import time

from cot_lab.core.callbacks import Callback, TrainState
from cot_lab.ui.figures import figure_display_data, loss_curve


class LiveLossPlot(Callback):
    """Redraw the train/validation loss (nats/token) in `output` at most every `interval_s` seconds."""

    def __init__(self, output, floor: float | None = None, *, label: str = "this run", interval_s: float = 0.5,
                 progress=None, status=None):
        self.output, self.floor, self.label, self.interval_s = output, floor, label, interval_s
        self.progress, self.status = progress, status  # optional FloatProgress (0..1) and HTML/Label widgets
        self.train: list[list[float]] = []
        self.val: list[list[float]] = []
        self._drawn_at = self._told_at = 0.0
        self._last_val: float | None = None

    def draw(self, train=None, val=None) -> None:
        """Show the curves so far (or the given ones) in the output."""
        fig = loss_curve({self.label: (self.train if train is None else train, self.val if val is None else val)},
                         floor=self.floor)
        self.output.outputs = (figure_display_data(fig),)
        self._drawn_at = time.monotonic()

    def _tell(self, state: TrainState) -> None:
        if self.progress is not None:
            self.progress.value = min(1.0, state.progress)
        if self.status is not None:
            total = f"/{state.total_steps}" if state.total_steps else ""
            val = f" · validation {self._last_val:.3f}" if self._last_val is not None else ""
            self.status.value = (f"training: step {state.step}{total} · {state.tokens:,} tokens · "
                                 f"loss {state.loss:.3f}{val} · {state.elapsed_s:.1f} s")
        self._told_at = time.monotonic()

    def on_step(self, state: TrainState) -> None:
        self.train.append([state.step, state.tokens, state.loss])
        now = time.monotonic()
        if now - self._told_at >= 0.1:
            self._tell(state)
        if now - self._drawn_at >= self.interval_s and len(self.train) > 1:
            self.draw()

    def on_eval(self, state: TrainState, val_loss: float) -> None:
        self.val.append([state.step, state.tokens, val_loss])
        self._last_val = val_loss

    def on_end(self, run) -> None:
        if self.progress is not None:
            self.progress.value = 1.0 if run.status == "ok" else self.progress.value
        self.draw(run.train_curve, run.val_curve)  # the whole run, also for one returned from the store
