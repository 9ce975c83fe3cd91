"""Notebook 02's panels: a model-size slider at a fixed budget against a fitted law, and a live-sweep button.

Moving the slider only evaluates the law (instant); the Train button runs one real training at that
exact point and puts the measured loss beside the prediction. Errors show in the panel.
"""
from __future__ import annotations

import html

import ipywidgets as W

from cot_lab.core import validate
from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.data import Corpus
from cot_lab.ui.figures import figure_display_data
from cot_lab.core.runs import Run, RunStore
from cot_lab.core.law import ScalingLaw
from cot_lab.scaling.plots import size_at_budget
from cot_lab.scaling.sweep import SweepPlan, SweepResult, run_sweep, stored_points
from cot_lab.core.recipe import batch_size_for
from cot_lab.core.executor import default_workers
from cot_lab.core.shapes import size_ladder
from cot_lab.ui.format import human
from cot_lab.core.speed import expected_seconds, speed_for
from cot_lab.ui.action import LongAction, TrainProgress, unfinished_run
from cot_lab.ui.panel import Panel, css_classes


class SizeAtBudgetPanel(Panel):
    """A size slider (real ladder shapes) at `flops` FLOPs: the law's predicted loss, and Train to measure it."""

    def __init__(self, law: ScalingLaw, flops: float, corpus: Corpus, store: RunStore | None = None, *,
                 seq_len: int = 128, eval_sequences: int = 128, floor: float | None = None):
        if not isinstance(law, ScalingLaw):
            raise ValueError(f"law must be a cl.ScalingLaw, e.g. fit.approach3 (got {type(law).__name__})")
        flops = validate.number("flops", flops, hint="a FLOP budget, e.g. 1e12")
        if not isinstance(corpus, Corpus):
            raise ValueError(f"corpus must be a cot_lab corpus from cl.load_corpus(...) (got {type(corpus).__name__})")
        self.law, self.flops, self.corpus, self.floor = law, float(flops), corpus, floor
        self.store = RunStore() if store is None else store
        self.eval_sequences = eval_sequences
        # Only shapes that get at least ~30 steps at this budget are offered: fewer is not a training run.
        self.batch_size = batch_size_for(self.flops, seq_len)
        self.configs = [c for c in size_ladder(seq_len, corpus.vocab_size)
                        if self.flops / flops_per_token(c) >= 30 * self.batch_size * seq_len]
        if len(self.configs) < 2:
            raise ValueError(f"flops={flops:.3g} is too small for two model sizes of at least 30 steps; raise it")
        self.measured: list[Run] = []
        best = min(range(len(self.configs)), key=lambda i: self._predicted(self.configs[i]))
        self.best = self.configs[best]  # the law's best shape at this budget, under the trainer's own FLOP count
        options = [(f"{human(count_params(c).total)} (d{c.d_model}×{c.n_layer})", i) for i, c in enumerate(self.configs)]
        self.slider = W.SelectionSlider(options=options, value=best, description="model size",
                                        continuous_update=True, layout=W.Layout(width="520px"),
                                        style={"description_width": "90px"})
        self.readout = W.HTML()
        self.button = W.Button(description="Train this size", icon="play", button_style="primary")
        self.action = LongAction(self, self.button, name="training")
        self.plot = W.Output()
        self.message = W.Output()  # tracebacks of unexpected errors
        self.details = self.message
        self.status = W.HTML()
        self.slider.observe(self.guard(lambda _: self._refresh()), names="value")
        self.button.on_click(self.guard(lambda _: self.action.start(*self._training())))
        super().__init__([self.slider, self.readout, self.action.widget, self.status, self.message, self.plot])
        css_classes((self, "size-panel"), (self.slider, "size"), (self.readout, "prediction"), (self.button, "train"),
                    (self.message, "message"), (self.plot, "output"), (self.status, "status"))
        self._refresh()

    @property
    def config(self):
        """The ModelConfig under the slider."""
        return self.configs[self.slider.value]

    def _predicted(self, cfg) -> float:
        return float(self.law.loss(count_params(cfg).total, self.flops / flops_per_token(cfg)))

    def _refresh(self) -> None:
        cfg = self.config
        n, tokens = count_params(cfg).total, self.flops / flops_per_token(cfg)
        done = [r for r in self.measured if r.config == cfg]
        measured = ""
        if done:
            r = done[-1]
            measured = (f"<br>measured <b>{r.final_val_loss:.4f}</b> nats/token: prediction error "
                        f"<b>{100 * (r.final_val_loss / self._predicted(cfg) - 1):+.2f}%</b>")
        self.readout.value = (
            f"C = {self.flops:.3g} FLOPs buys this model <b>{human(tokens)}</b> tokens "
            f"({tokens / n:.3g} tokens per parameter). The law predicts <b>{self._predicted(cfg):.4f}</b> nats/token; "
            f"its best size on this ladder is <b>{human(count_params(self.best).total)}</b> "
            f"(FLOPs counted as the trainer counts them, not 6ND).{measured}")
        fig = size_at_budget(self.law, self.flops, [count_params(c).total for c in self.configs],
                             [self.flops / flops_per_token(c) for c in self.configs], chosen=n,
                             measured=self.measured, floor=self.floor)
        self.plot.outputs = (figure_display_data(fig),)

    def train(self) -> Run:
        """Train the size under the slider at this budget (a real run, or the stored one); returns the Run.

        The same as pressing the button, but in this cell: the notebook's Stop interrupts it.
        """
        return self.action.run(*self._training())

    def _training(self):
        """(job, expected_s, done) for `LongAction`: the size under the slider, at this budget."""
        from cot_lab.core.training import train

        cfg = self.config
        n = count_params(cfg).total

        def job(ctx) -> Run:
            self.status.value = f"training {n:,} parameters on {self.flops:.3g} FLOPs · <b>Stop</b> keeps what was trained"
            return train(cfg, self.corpus, flops=self.flops, batch_size=self.batch_size, store=self.store,
                         eval_sequences=self.eval_sequences, progress=False, callbacks=[TrainProgress(ctx)],
                         stop=ctx.stop)

        return job, expected_seconds(self.store, n, self.flops), self._finished

    def _finished(self, run: Run) -> str:
        run._model = None
        if run.status != "ok":
            return unfinished_run(self.status, run, advice="press the button again to train it in full")
        self.measured.append(run)
        self.status.value = html.escape(f"{'📦 from the store' if run.from_store else '✅ trained'}: "
                                        f"{run.final_val_loss:.4f} nats/token")
        self._refresh()
        return "from the store" if run.from_store else f"done: {run.steps:,} steps"


class SweepButton(Panel):
    """A button that runs `plan` on `corpus` (resuming from the store) with Stop and one progress bar; `.result` holds the last SweepResult."""

    def __init__(self, plan: SweepPlan, corpus: Corpus, store: RunStore | None = None, *, eval_sequences: int = 128,
                 workers: int | None = None, seeds=(0,), on_done=None):
        if not isinstance(plan, SweepPlan):
            raise ValueError(f"plan must be a SweepPlan from cl.sweep.isoflop_plan(...) (got {type(plan).__name__})")
        self.plan, self.corpus, self.on_done = plan, corpus, on_done
        self.seeds = [validate.integer("seeds[]", s, low=0) for s in seeds]
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={seeds!r} must be a non-empty list of distinct seeds, e.g. (0, 1)")
        n_runs = len(plan) * len(self.seeds)
        self.store = RunStore() if store is None else store
        self.eval_sequences = eval_sequences
        self.workers = default_workers() if workers is None else workers
        self.result: SweepResult | None = None
        self.button = W.Button(description=f"Run the sweep ({n_runs} runs)", icon="play", button_style="primary",
                               layout=W.Layout(width="260px"))
        self.action = LongAction(self, self.button, name="sweep")
        self.status = W.HTML(f"{len(plan)} points x {len(self.seeds)} seed(s) = {n_runs} runs, "
                             f"{plan.total_flops * len(self.seeds):.3g} FLOPs in all, {self.workers} at a time; "
                             "finished runs come from your store.")
        self.out = W.Output()  # tracebacks of unexpected errors
        self.details = self.out
        self.button.on_click(self.guard(lambda _: self.action.start(*self._sweep())))
        super().__init__([self.action.widget, self.status, self.out])
        css_classes((self, "sweep-panel"), (self.button, "sweep-run"), (self.status, "sweep-status"))

    def run(self) -> SweepResult:
        """Run (or resume) the sweep now, in this cell; the same as pressing the button."""
        return self.action.run(*self._sweep())

    def expected_s(self) -> float:
        """Estimated seconds for the runs not yet in the store, `workers` at a time (from this machine's speed)."""
        speed = speed_for(self.store)
        seconds = []
        for seed in self.seeds:
            stored = stored_points(self.plan, self.corpus, self.store, seed=seed, eval_sequences=self.eval_sequences)
            seconds += [speed(p.n_params).seconds(p.flops) for i, p in enumerate(self.plan.points) if i not in stored]
        return sum(seconds) / max(1, min(self.workers, len(seconds)))

    def _sweep(self):
        def job(ctx) -> SweepResult:
            self.status.value = "sweeping · <b>Stop</b> keeps the finished runs; pressing the button again resumes"
            return run_sweep(self.plan, self.corpus, self.store, seeds=self.seeds, eval_sequences=self.eval_sequences,
                             workers=self.workers, progress=False, report=ctx.report, stop=ctx.stop)

        return job, self.expected_s(), self._finished

    def _finished(self, r: SweepResult) -> str:
        self.result = r
        trained = sum(not x.from_store for x in r.runs)
        state = "stopped early: press again to resume" if r.interrupted else "done"
        n_runs = len(self.plan) * len(self.seeds)
        self.status.value = html.escape(f"{state}: {len(r.runs)}/{n_runs} runs ({trained} trained now) "
                                        f"in {r.wall_s:.0f} s")
        if self.on_done is not None:
            self.on_done(r)
        return f"{state}: {len(r.runs)} of {n_runs} runs"
