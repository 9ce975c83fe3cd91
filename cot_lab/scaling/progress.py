"""One progress bar over a sweep's FLOPs: a tqdm bar with an ETA, and/or a panel's bar, for runs in any order."""
from __future__ import annotations

import math

from cot_lab.core.callbacks import Callback, TrainState
from cot_lab.core.runs import Run


class SweepProgress:
    """The sweep's progress over the FLOPs it trains now (runs already in the store are left out up front),
    to a tqdm bar (`bar=True`) and/or a `report(fraction, text)` function (a panel's bar).

    Counted per job: one run of the sweep (a plan point and a seed); `flops` gives each job's budget."""

    def __init__(self, flops: list[float], stored: set[int], bar: bool, report=None):
        self.flops, self.report = flops, report
        self.total = sum(f for i, f in enumerate(flops) if i not in stored) or 1.0
        self.finished_flops, self.in_flight, self.n_done = 0.0, {}, 0
        self.bar = None
        if bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, unit="FLOP", unit_scale=True, desc=self._counts())

    def _counts(self) -> str:
        return f"{self.n_done} of {len(self.flops)} runs done; FLOPs"

    @property
    def fraction(self) -> float:
        """Share of this sweep's FLOPs to train that is trained (0..1)."""
        return min(1.0, (self.finished_flops + sum(self.in_flight.values())) / self.total)

    def step(self, index: int, flops: float) -> None:
        """Job `index` has trained `flops` FLOPs so far."""
        self.in_flight[index] = flops
        self._show()

    def callback(self, index: int) -> Callback:
        """A trainer callback that reports job `index`'s steps here."""
        progress = self

        class Steps(Callback):
            def on_step(self, state: TrainState) -> None:
                progress.step(index, state.flops)
        return Steps()

    def finish(self, index: int, run: Run) -> None:
        """Count a finished run; one from the store was never in the total."""
        self.in_flight.pop(index, None)
        self.n_done += 1
        if not run.from_store:
            self.finished_flops += run.flops if run.status != "ok" else self.flops[index]
        self._show(force=True, last=run)

    def _show(self, force: bool = False, last: Run | None = None) -> None:
        training = f" · {len(self.in_flight)} training" if self.in_flight else ""
        if self.report is not None:
            self.report(self.fraction, f"{self.n_done} of {len(self.flops)} runs done{training}", force=force)
        if self.bar is not None:
            self.bar.update(self.fraction * self.total - self.bar.n)
            if last is not None:
                loss = f"{last.final_val_loss:.3f}" if math.isfinite(last.final_val_loss) else last.status
                self.bar.set_description(self._counts())
                self.bar.set_postfix({"last": f"{last.n_params / 1e3:.0f}K@{last.budget['value']:.0e}", "loss": loss})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
