"""A trainer hook that watches the loss on named slices of rows over training (contaminated and clean rows, say).

The validation loss a run reports is one number over one set of rows. Contamination shows when two sets are
watched side by side: the rows planted in the training stream fall below the floor while a clean held-out set of
the same distribution does not. `SliceLossCallback({"planted": rows[:32], "clean": rows[32:]}, every=50)` scores
each slice (mean next-token loss in nats/token, the kit's `sequence_losses`: fp32, eval mode, no gradients) before
the first step, every `every` optimizer steps and after the last one.
"""
from __future__ import annotations

from cot_lab.core import validate
from cot_lab.core.callbacks import Callback, TrainState
from cot_lab.core.evaluate import sequence_losses
from cot_lab.evaluation.inputs import token_rows


class SliceLossCallback(Callback):
    """Mean loss (nats/token) of the model being trained on each of `slices` ({name: int rows [n, T+1]}).

    `self.records` holds dicts {step, trained_tokens, <slice name>: loss, ...} in training order; `.frame()` gives a
    DataFrame. `on_measure(record)` is called after each measurement (a live plot).
    """

    def __init__(self, slices: dict, *, every: int = 50, on_measure=None):
        if not isinstance(slices, dict) or not slices:
            raise ValueError(f"slices={slices!r} must be a non-empty dict {{name: token rows}}, e.g. "
                             "{'planted': val[:32], 'clean': val[32:]}")
        reserved = {"step", "trained_tokens"} & set(slices)
        if reserved:
            raise ValueError(f"slices may not be named {sorted(reserved)}: those are the records' own columns")
        self.slices = dict(slices)
        self.every = validate.integer("every", every, hint="optimizer steps between measurements, e.g. 50")
        self.on_measure = on_measure
        self.records: list[dict] = []
        self.model = None

    def on_start(self, model) -> None:
        self.model, self.records = model, []
        self.slices = {name: token_rows(f"slices[{name!r}]", rows, model) for name, rows in self.slices.items()}
        self._measure(0, 0)

    def on_step(self, state: TrainState) -> None:
        last = state.total_steps is not None and state.step == state.total_steps
        if self.model is None or (state.step % self.every and not last):
            return
        self._measure(state.step, state.tokens)

    def _measure(self, step: int, tokens: int) -> None:
        record = dict(step=int(step), trained_tokens=int(tokens))
        for name, rows in self.slices.items():
            record[name] = float(sequence_losses(self.model, rows).double().mean())
        self.records.append(record)
        if self.on_measure is not None:
            self.on_measure(record)

    def frame(self):
        """A pandas DataFrame, one row per measurement: step, trained_tokens and one column per slice."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        return pd.DataFrame(self.records)
