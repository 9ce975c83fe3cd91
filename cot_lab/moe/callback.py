"""A trainer hook that watches the router over training: `RouterStats` of the live model every few steps."""
from __future__ import annotations

from cot_lab.core import validate
from cot_lab.core.callbacks import Callback, TrainState
from cot_lab.core.config import config_of
from cot_lab.moe.router import DEFAULT_CAPACITY_FACTOR, RouterStats, check_capacity_factor, router_stats_of_rows


class RouterHistory:
    """(step, tokens, RouterStats) records in training order; tokens are training tokens seen so far."""

    def __init__(self):
        self.records: list[tuple[int, int, RouterStats]] = []

    def append(self, step: int, tokens: int, stats: RouterStats) -> None:
        self.records.append((step, tokens, stats))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def frame(self, per_expert: bool = False):
        """A pandas DataFrame: one row per (step, layer) with step, tokens (trained so far) and the columns of
        `RouterStats.frame()`;
        per_expert=True: one row per (step, layer, expert) with its assignments `count` and share `load` (f_i)."""
        import pandas as pd

        parts = []
        for step, tokens, stats in self.records:
            if per_expert:
                layers, experts = stats.counts.shape
                part = pd.DataFrame(dict(layer=[l for l in range(layers) for _ in range(experts)],
                                         expert=list(range(experts)) * layers, count=stats.counts.flatten(),
                                         load=stats.load.flatten()))
            else:
                part = stats.frame()
            part.insert(0, "tokens", tokens)
            part.insert(0, "step", step)
            parts.append(part)
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


class RouterCallback(Callback):
    """Every `every` optimizer steps (and before the first and after the last), `RouterStats` of the model being
    trained, on the same `sequences` rows of `corpus`'s validation set: changes over training are the model's.

    Each measurement is one forward of sequences x seq_len tokens without gradients; the model is put in eval
    mode for it and back after. The records are `self.history` (a `RouterHistory`; `.frame()` for a DataFrame);
    `on_measure(step, tokens, stats)` is called after each, for a live plot.
    """

    def __init__(self, corpus, *, every: int = 50, sequences: int = 8, capacity_factor: float = DEFAULT_CAPACITY_FACTOR,
                 on_measure=None):
        self.corpus, self.on_measure = corpus, on_measure
        self.every = validate.integer("every", every, hint="optimizer steps between measurements, e.g. 50")
        self.sequences = validate.integer("sequences", sequences, hint="validation rows per measurement, e.g. 8")
        self.capacity_factor = check_capacity_factor(capacity_factor)
        self.history = RouterHistory()
        self.model = self.rows = None

    def on_start(self, model) -> None:
        cfg = config_of(model)
        if cfg.arch != "moe":
            raise ValueError(f"RouterCallback watches an MoE model's router; this run trains a {cfg.arch} model")
        self.model, self.history = model, RouterHistory()
        self.rows = self.corpus.val_batch(self.sequences, cfg.seq_len)
        self._measure(0, 0)

    def on_step(self, state: TrainState) -> None:
        last = state.total_steps is not None and state.step == state.total_steps  # the trained model's routing too
        if self.model is None or (state.step % self.every and not last):
            return
        self._measure(state.step, state.tokens)

    def _measure(self, step: int, tokens: int) -> None:
        stats = router_stats_of_rows(self.model, self.rows, capacity_factor=self.capacity_factor)
        self.history.append(step, tokens, stats)
        if self.on_measure is not None:
            self.on_measure(step, tokens, stats)

    def frame(self, per_expert: bool = False):
        """`self.history.frame(per_expert)`."""
        return self.history.frame(per_expert)
