"""A trainer callback that draws the loss curve live into an ipywidgets Output.

The figure is rendered to PNG and put into the Output's `outputs` directly (what
`clear_output(wait=True); display(fig)` would send), which also works outside a kernel and from a
panel's background thread, so tests can see it. Redraws are throttled: drawing costs ~50 ms, a tiny
model's step ~10 ms. Progress and ETA are the panel's `ActionBar` (ui/action.py), not this plot's.
"""
from __future__ import annotations

import time

from cot_lab.core.callbacks import Callback, TrainState
from cot_lab.ui.figures import figure_display_data, loss_curve


class LiveLossPlot(Callback):
    """Redraw the train/validation loss (nats/token) in `output` at most every `interval_s` seconds."""

    def __init__(self, output, floor: float | None = None, *, label: str = "this run", interval_s: float = 0.5):
        self.output, self.floor, self.label, self.interval_s = output, floor, label, interval_s
        self.train: list[list[float]] = []
        self.val: list[list[float]] = []
        self._drawn_at = 0.0

    def draw(self, train=None, val=None) -> None:
        """Show the curves so far (or the given ones) in the output."""
        fig = loss_curve({self.label: (self.train if train is None else train, self.val if val is None else val)},
                         floor=self.floor)
        self.output.outputs = (figure_display_data(fig),)
        self._drawn_at = time.monotonic()

    def on_step(self, state: TrainState) -> None:
        self.train.append([state.step, state.tokens, state.loss])
        if time.monotonic() - self._drawn_at >= self.interval_s and len(self.train) > 1:
            self.draw()

    def on_eval(self, state: TrainState, val_loss: float) -> None:
        self.val.append([state.step, state.tokens, val_loss])

    def on_end(self, run) -> None:
        self.draw(run.train_curve, run.val_curve)  # the whole run, also for one returned from the store
