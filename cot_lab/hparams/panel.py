"""Notebook 05's panels: a learning-rate slider over a shipped sweep, a batch slider over steps to a loss, and a
live run that reports B_simple as it trains.

Sliders only read shipped runs (instant); each Train button runs one real training. Errors show in the panel.
"""
from __future__ import annotations

import html
import math

import ipywidgets as W

from cot_lab.core import validate
from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.core.law import ScalingLaw
from cot_lab.core.runs import Run, RunStore
from cot_lab.core.shapes import size_ladder
from cot_lab.core.speed import expected_seconds
from cot_lab.data import Corpus
from cot_lab.hparams.critical import critical_batch
from cot_lab.hparams.noise_scale import NoiseScaleCallback
from cot_lab.hparams.plots import lr_curves, noise_scale_trajectory, steps_vs_tokens
from cot_lab.hparams.wasted import compute_multiplier
from cot_lab.ui.action import LongAction, TrainProgress, unfinished_run
from cot_lab.ui.figures import figure_display_data
from cot_lab.ui.format import human
from cot_lab.ui.panel import Panel, css_classes

LOG_STEP = 0.05  # log10 step of the rate slider: 20 stops per decade


def _corpus(corpus) -> Corpus:
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus must be a cot_lab corpus from cl.load_corpus(...) (got {type(corpus).__name__})")
    return corpus


class LearningRatePanel(Panel):
    """A width picker and a learning-rate slider over a shipped LR sweep at `flops` FLOPs: the loss read off the
    sweep (linear in log lr between its runs), the best rate, and what this rate costs as a multiple of the budget
    a tuned run needs for the same loss (`compute_multiplier`, from `law`). Train measures the exact point."""

    def __init__(self, frame, law: ScalingLaw, corpus: Corpus, store: RunStore | None = None, *, flops: float,
                 batch_size: int, beta2: float, seq_len: int = 128, eval_sequences: int = 128):
        if not isinstance(law, ScalingLaw):
            raise ValueError(f"law must be a cl.ScalingLaw, e.g. notebook 02's fit (got {type(law).__name__})")
        if len(frame) == 0 or not {"d_model", "lr", "final_val_loss"} <= set(frame.columns):
            raise ValueError("frame must have rows with d_model, lr and final_val_loss (e.g. the recipe pilot's runs)")
        self.frame, self.law, self.corpus = frame, law, _corpus(corpus)
        self.flops = validate.number("flops", flops, hint="the sweep's budget in FLOPs, e.g. 1e12")
        self.batch_size, self.beta2, self.eval_sequences = batch_size, beta2, eval_sequences
        self.store = RunStore() if store is None else store
        ladder = {c.d_model: c for c in size_ladder(seq_len, corpus.vocab_size)}
        widths = sorted(int(d) for d in frame["d_model"].unique())
        if not set(widths) <= set(ladder):
            raise ValueError(f"frame's widths {widths} are not all ladder widths {sorted(ladder)}")
        self.configs = {d: ladder[d] for d in widths}
        self.measured: list[Run] = []
        self.width = W.Dropdown(options=[(f"d_model {d} ({human(count_params(c).total)} parameters)", d)
                                         for d, c in self.configs.items()], value=widths[len(widths) // 2],
                                description="width", style={"description_width": "90px"})
        lrs = frame["lr"]
        self.lr_slider = W.FloatLogSlider(value=float(lrs.median()), base=10, min=math.log10(lrs.min()),
                                          max=math.log10(lrs.max()), step=LOG_STEP, description="learning rate",
                                          readout_format=".2e", continuous_update=True, layout=W.Layout(width="520px"),
                                          style={"description_width": "90px"})
        self.readout_html = W.HTML()
        self.button = W.Button(description="Train this point", icon="play", button_style="primary")
        self.action = LongAction(self, self.button, name="training")
        self.plot, self.details, self.status = W.Output(), W.Output(), W.HTML()
        for widget in (self.width, self.lr_slider):
            widget.observe(self.guard(lambda _: self._refresh()), names="value")
        self.button.on_click(self.guard(lambda _: self.action.start(*self._training())))
        super().__init__([self.width, self.lr_slider, self.readout_html, self.action.widget, self.status,
                          self.details, self.plot])
        css_classes((self, "lr-panel"), (self.lr_slider, "lr"), (self.width, "width"),
                    (self.readout_html, "lr-readout"), (self.button, "train"), (self.plot, "output"))
        self._refresh()

    def _curve(self):
        return self.frame[self.frame["d_model"] == self.width.value].sort_values("lr")

    def readout(self) -> dict:
        """What the panel shows: loss at the slider's rate (nats/token), the sweep's best, the budget multiplier."""
        import numpy as np

        curve, lr = self._curve(), float(self.lr_slider.value)
        cfg = self.configs[self.width.value]
        loss = float(np.interp(math.log(lr), np.log(curve["lr"]), curve["final_val_loss"]))
        best = curve.loc[curve["final_val_loss"].idxmin()]
        tokens = self.flops / flops_per_token(cfg)
        multiplier = compute_multiplier(self.law, tokens=tokens, loss=loss, best_loss=float(best["final_val_loss"]))
        return dict(d_model=cfg.d_model, lr=lr, loss=loss, best_lr=float(best["lr"]),
                    best_loss=float(best["final_val_loss"]), tokens=tokens, multiplier=multiplier)

    def set(self, *, d_model: int | None = None, lr: float | None = None) -> dict:
        """Move the picker and slider as a student would; returns `readout()`."""
        if d_model is not None:
            self.width.value = d_model
        if lr is not None:
            self.lr_slider.value = lr
        return self.readout()

    def _refresh(self) -> None:
        r = self.readout()
        wasted = ("This is the sweep's best rate: nothing wasted." if r["multiplier"] <= 1.0 + 1e-9 else
                  f"This rate costs <b>{r['multiplier']:.2f}x</b> the budget a tuned run needs for the same loss "
                  f"({1 - 1 / r['multiplier']:.0%} of this budget wasted), by notebook 02's law.")
        self.readout_html.value = (
            f"At lr {r['lr']:.3g} the shipped sweep reads <b>{r['loss']:.4f}</b> nats/token "
            f"(between its runs); its best rate is {r['best_lr']:.3g} at {r['best_loss']:.4f}. {wasted}")
        measured = [m for m in self.measured if m.config.d_model == self.width.value]
        fig = lr_curves(self._curve(), chosen_lr=r["lr"], measured=measured,
                        title=f"d_model {self.width.value} at {self.flops:.3g} FLOPs")
        self.plot.outputs = (figure_display_data(fig),)

    def train(self) -> Run:
        """Train the point under the slider (a real run, or the stored one), as the button does; returns the Run."""
        return self.action.run(*self._training())

    def _training(self):
        from cot_lab.core.training import train

        cfg, lr = self.configs[self.width.value], float(self.lr_slider.value)

        def job(ctx) -> Run:
            self.status.value = f"training d_model {cfg.d_model} at lr {lr:.3g} · <b>Stop</b> keeps what was trained"
            return train(cfg, self.corpus, flops=self.flops, batch_size=self.batch_size, lr=lr, beta2=self.beta2,
                         store=self.store, eval_sequences=self.eval_sequences, progress=False,
                         callbacks=[TrainProgress(ctx)], stop=ctx.stop)

        return job, expected_seconds(self.store, count_params(cfg).total, self.flops), self._finished

    def _finished(self, run: Run) -> str:
        run._model = None
        if run.status != "ok":
            return unfinished_run(self.status, run)
        self.measured.append(run)
        r = self.readout()
        self.status.value = html.escape(f"{'📦 from the store' if run.from_store else '✅ trained'}: measured "
                                        f"{run.final_val_loss:.4f} nats/token against {r['loss']:.4f} read off the "
                                        f"sweep")
        self._refresh()
        return "from the store" if run.from_store else f"done: {run.steps:,} steps"


def best_run_per_batch(runs) -> list[Run]:
    """Of runs at several rates per batch size, the one with the lowest final loss at each batch (batch order)."""
    best: dict[int, Run] = {}
    for r in runs:
        b = int(r.hparams["batch_size"])
        if r.status == "ok" and (b not in best or r.final_val_loss < best[b].final_val_loss):
            best[b] = r
    return [best[b] for b in sorted(best)]


class BatchPanel(Panel):
    """A target-loss slider and a batch slider over batch runs (each batch's best rate): steps and tokens to the
    target at each batch, perfect scaling from the smallest, and the critical batch both ways."""

    def __init__(self, runs, *, target_loss: float | None = None):
        self.runs = best_run_per_batch(getattr(runs, "runs", runs))
        if len(self.runs) < 3:
            raise ValueError(f"runs must hold at least 3 batch sizes that finished (got {len(self.runs)})")
        reached_by_all = max(r.final_val_loss for r in self.runs)
        start = min(r.val_curve[0][2] for r in self.runs)
        floor = min(r.final_val_loss for r in self.runs)
        target = reached_by_all if target_loss is None else validate.number("target_loss", target_loss)
        self.target_slider = W.FloatSlider(value=target, min=floor + 1e-3, max=start, step=0.005,
                                           description="target loss", readout_format=".3f",
                                           continuous_update=False, layout=W.Layout(width="520px"),
                                           style={"description_width": "90px"})
        batches = [int(r.hparams["batch_size"]) for r in self.runs]
        self.batch_slider = W.SelectionSlider(options=batches, value=batches[len(batches) // 2], description="batch",
                                              layout=W.Layout(width="520px"), style={"description_width": "90px"})
        self.readout_html, self.plot, self.details, self.status = W.HTML(), W.Output(), W.Output(), W.HTML()
        for widget in (self.target_slider, self.batch_slider):
            widget.observe(self.guard(lambda _: self._refresh()), names="value")
        super().__init__([self.target_slider, self.batch_slider, self.readout_html, self.status, self.details,
                          self.plot])
        css_classes((self, "batch-panel"), (self.batch_slider, "batch"), (self.target_slider, "target"),
                    (self.readout_html, "batch-readout"), (self.plot, "output"))
        self._refresh()

    def critical(self):
        """The CriticalBatch at the slider's target loss."""
        return critical_batch(self.runs, float(self.target_slider.value))

    def readout(self) -> dict:
        """Steps and tokens to the target at the slider's batch, the perfect-scaling steps, the critical batches."""
        c, b = self.critical(), int(self.batch_slider.value)
        i = c.batch_sizes.index(b)
        steps = c.steps[i]
        linear = c.steps[0] * c.batch_sizes[0] / b
        return dict(target_loss=c.target_loss, batch_size=b, steps=steps, tokens=steps * b * c.seq_len,
                    linear_steps=linear, overhead=steps / linear - 1, mccandlish=c.mccandlish, zhang=c.zhang,
                    seq_len=c.seq_len)

    def _refresh(self) -> None:
        r = self.readout()
        if not math.isfinite(r["steps"]):
            line = f"batch {r['batch_size']} never reaches {r['target_loss']:.3f} within this budget."
        else:
            line = (f"batch {r['batch_size']}: <b>{r['steps']:,.0f}</b> steps and {human(r['tokens'])} tokens to "
                    f"{r['target_loss']:.3f} nats/token; perfect scaling from the smallest batch would take "
                    f"{r['linear_steps']:,.0f} steps (<b>{r['overhead']:+.0%}</b>).")
        zhang = (f"{r['zhang']:.3g} sequences" if math.isfinite(r["zhang"]) else "beyond the largest batch tried")
        mccandlish = (f"{r['mccandlish']:.3g} sequences ({r['mccandlish'] * r['seq_len']:,.0f} tokens)"
                      if math.isfinite(r["mccandlish"]) else "beyond the batches that reached the target (no "
                      "hyperbola fits: they all scale almost perfectly)")
        self.readout_html.value = (f"{line}<br>Critical batch: McCandlish's E_min / S_min = <b>{mccandlish}</b>; "
                                   f"Zhang et al.'s 20% over linear: <b>{zhang}</b>.")
        self.plot.outputs = (figure_display_data(steps_vs_tokens(self.critical(), chosen=r["batch_size"])),)


class NoiseScalePanel(Panel):
    """A Train button for one real run that measures B_simple as it trains (`NoiseScaleCallback`), redrawn live;
    before it is pressed, the shipped run's history."""

    def __init__(self, cfg, corpus: Corpus, *, flops: float, batch_size: int, history=(), shipped_run=None,
                 every: int = 100, store: RunStore | None = None, eval_sequences: int = 128):
        self.cfg, self.corpus = cfg, _corpus(corpus)
        self.flops = validate.number("flops", flops, hint="a FLOP budget, e.g. 1e12")
        self.batch_size, self.every, self.eval_sequences = batch_size, every, eval_sequences
        self.store = RunStore() if store is None else store  # for the ETA only: a hooked run must train live
        self.hook: NoiseScaleCallback | None = None
        self.button = W.Button(description="Train and measure B_simple", icon="play", button_style="primary")
        self.action = LongAction(self, self.button, name="training")
        self.plot, self.details, self.status = W.Output(), W.Output(), W.HTML()
        self.button.on_click(self.guard(lambda _: self.action.start(*self._training())))
        super().__init__([self.action.widget, self.status, self.details, self.plot])
        css_classes((self, "noise-panel"), (self.button, "train"), (self.plot, "output"))
        if history:
            self._draw(history, shipped_run, "the shipped run (press Train to measure your own)")

    def _draw(self, history, run, title: str) -> None:
        self.plot.outputs = (figure_display_data(noise_scale_trajectory(history, run, title=title)),)

    def train(self) -> Run:
        """Train and measure, as the button does; returns the Run (its B_simple history: `self.hook.frame()`)."""
        return self.action.run(*self._training())

    def _training(self):
        from cot_lab.core.training import train

        def redraw(step, tokens, estimate):
            if len(self.hook.history) >= 2:
                self._draw(self.hook.frame(), None, f"B_simple so far (step {step:,})")

        self.hook = NoiseScaleCallback(self.corpus, every=self.every, on_measure=redraw)

        def job(ctx) -> Run:
            self.status.value = "training and measuring B_simple · <b>Stop</b> keeps what was trained"
            return train(self.cfg, self.corpus, flops=self.flops, batch_size=self.batch_size,
                         eval_sequences=self.eval_sequences, progress=False, stop=ctx.stop,
                         callbacks=[TrainProgress(ctx), self.hook])

        return job, expected_seconds(self.store, count_params(self.cfg).total, self.flops), self._finished

    def _finished(self, run: Run) -> str:
        run._model = None
        if self.hook.history:
            self._draw(self.hook.frame(), run, "B_simple along your run")
        last = self.hook.history[-1][2].b_simple_tokens if self.hook.history else math.nan
        self.status.value = html.escape(f"{'✅' if run.status == 'ok' else '⚠️'} run {run.status}: "
                                        f"{len(self.hook.history)} measurements, last B_simple {last:,.0f} tokens")
        return f"{run.status}: {run.steps:,} steps"
