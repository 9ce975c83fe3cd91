"""Trainer callbacks: hooks called on every step, every evaluation and at the end of a run."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainState:
    """Where a run is. tokens: target tokens trained so far; flops: training FLOPs so far; loss: nats/token;
    elapsed_s: seconds of training (evaluation excluded); progress: fraction of the budget spent, 0..1."""

    step: int
    total_steps: int | None
    tokens: int
    flops: float
    loss: float
    lr: float
    elapsed_s: float
    progress: float


class Callback:
    """Subclass and override any of these; the trainer calls them in order of the `callbacks` list."""

    def on_start(self, model) -> None:
        """Once, before the first step, with the model about to be trained (on its device)."""

    def on_step(self, state: TrainState) -> None:
        """After each optimizer step."""

    def on_eval(self, state: TrainState, val_loss: float) -> None:
        """After each evaluation on the validation set (val_loss in nats/token)."""

    def on_end(self, run) -> None:
        """Once, with the finished `Run` (also for a run returned from the store, or interrupted)."""


class ProgressBar(Callback):
    """A `tqdm.auto` bar over the budget (steps, or seconds for a time budget) with the latest losses."""

    def __init__(self, description: str = "train"):
        self.description = description
        self.bar = None
        self.val_loss = None

    def _ensure(self, state: TrainState):
        if self.bar is None:
            from tqdm.auto import tqdm

            if state.total_steps is not None:
                self.bar = tqdm(total=state.total_steps, desc=self.description, unit="step")
            else:
                self.bar = tqdm(total=100, desc=self.description, unit="%", bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")
        return self.bar

    def on_step(self, state: TrainState) -> None:
        bar = self._ensure(state)
        target = state.step if state.total_steps is not None else min(100, int(100 * state.progress))
        bar.update(target - bar.n)
        postfix = {"loss": f"{state.loss:.3f}"}
        if self.val_loss is not None:
            postfix["val"] = f"{self.val_loss:.3f}"
        if state.step % 10 == 0 or state.step == state.total_steps:
            bar.set_postfix(postfix, refresh=False)

    def on_eval(self, state: TrainState, val_loss: float) -> None:
        self.val_loss = val_loss

    def on_end(self, run) -> None:
        if self.bar is not None:
            self.bar.set_postfix({"val": f"{run.final_val_loss:.3f}", "status": run.status})
            self.bar.close()
            self.bar = None
