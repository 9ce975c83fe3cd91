"""Notebook dashboards built from core ipywidgets only (JupyterLab 4, VS Code and Colab render them).

`train_panel()` wires sliders to the library: moving a slider only recomputes cheap read-outs
(parameters, tokens, FLOPs, an estimated time) and looks the settings up in the run store;
training happens only when Train is pressed. An error inside a callback is shown in the panel,
because ipywidgets would otherwise send it to a log the student never sees.
"""
from __future__ import annotations

import html
import math

import ipywidgets as W

from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.core.config import ModelConfig, import_model_classes
from cot_lab.core.shapes import preset
from cot_lab.data import BUILTIN as BUILTIN_CORPORA, DEFAULT_VOCAB, Corpus, load_corpus
from cot_lab.core.device import autocast_dtype, device_name, measure_peak_flops, precision_name, resolve_device
from cot_lab.ui.format import duration, human, red
from cot_lab.core.speed import SpeedEstimate, estimate_speed
from cot_lab.ui.action import LongAction, TrainProgress
from cot_lab.ui.live import LiveLossPlot
from cot_lab.ui.panel import Panel, css_classes
from cot_lab.core.profiles import Profile, profile as get_profile
from cot_lab.core.runs import Run, RunStore, settings_key
from cot_lab.core.training import plan_run, train

SIZES_PER_DECADE = 12
DRAWN_KEPT = 32  # stored runs' loss-curve PNGs a panel keeps (~40 KB each), so moving back redraws nothing


class TrainPanel(Panel):
    """Sliders for corpus, model size (parameters) and budget (FLOPs), live read-outs, a Train button and a plot."""

    def __init__(self, corpus: Corpus | str | None = None, store: RunStore | None = None,
                 profile: Profile | str | None = None, *, device=None, seed: int = 0,
                 peak_flops: float | None = None):
        self.profile = get_profile(profile)
        if corpus is not None and not isinstance(corpus, (Corpus, str)):
            raise ValueError(f"corpus={corpus!r} must be a corpus from cl.load_corpus(...), a corpus name such as "
                             f"'synthetic', or None for the profile's ({self.profile.corpus!r})")
        if store is not None and not isinstance(store, RunStore):
            raise ValueError(f"store={store!r} must be a cl.RunStore or None (the default store under COT_LAB_HOME)")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed={seed!r} must be a non-negative integer, e.g. 0")
        if peak_flops is not None and not (isinstance(peak_flops, (int, float)) and 0 < peak_flops < math.inf):
            raise ValueError(f"peak_flops={peak_flops!r} must be a positive FLOP/s figure, or None to measure it")
        self.store = RunStore() if store is None else store
        self.device = resolve_device(device)
        self.seed = seed
        self.precision = precision_name(autocast_dtype(self.device))
        self._peak = peak_flops
        self._speeds: list[tuple[int, float]] | None = None  # (parameters, FLOP/s) of this device's stored runs
        self._corpora: dict[str, Corpus] = {}
        if isinstance(corpus, Corpus):
            self._corpora[corpus.name] = corpus
        name = corpus.name if isinstance(corpus, Corpus) else (corpus or self.profile.corpus)
        if name == "synthetic" and name not in self._corpora:  # cheap to load, and it knows its floor
            self._corpora[name] = load_corpus(name)
        self._configs: dict[int, ModelConfig] = {}
        self.last_run: Run | None = None
        self._rebuilding = False

        P = self.profile
        wide = W.Layout(width="560px")
        style = {"description_width": "110px"}
        self.corpus_dropdown = W.Dropdown(options=list(dict.fromkeys([name, *BUILTIN_CORPORA])), value=name,
                                          description="corpus", style=style)
        self.size_slider = W.SelectionSlider(options=[("-", 0)], description="model size", continuous_update=False,
                                             layout=wide, style=style)
        self.budget_slider = W.FloatLogSlider(value=P.flops, base=10, min=math.log10(P.flops_min),
                                              max=math.log10(P.flops_max), step=0.1, description="budget (FLOPs)",
                                              continuous_update=False, readout_format=".2g", layout=wide, style=style)
        self.params_label, self.budget_label, self.time_label = W.HTML(), W.HTML(), W.HTML()
        self.train_button = W.Button(description="Train", button_style="primary", icon="play",
                                     tooltip="train this model on this budget (or show it from the store)")
        self.action = LongAction(self, self.train_button, name="training")
        self.progress = self.action.bar.bar
        self.status = W.HTML()
        self.output = W.Output(layout=W.Layout(min_height="40px"))
        self.details = self.output  # a traceback goes under the plot, where the student is looking
        super().__init__([self.corpus_dropdown, self.size_slider, self.budget_slider, self.params_label,
                          self.budget_label, self.time_label, self.action.widget,
                          self.status, self.output])
        css_classes((self, "panel"), (self.size_slider, "size"), (self.budget_slider, "budget"),
                    (self.params_label, "params"), (self.budget_label, "tokens"), (self.time_label, "time"),
                    (self.train_button, "train"), (self.status, "status"), (self.output, "output"),
                    (self.corpus_dropdown, "corpus"))

        self._set_size_options(self.vocab_size, P.params)
        self.size_slider.observe(self.guard(self._on_change), names="value")
        self.budget_slider.observe(self.guard(self._on_change), names="value")
        self.corpus_dropdown.observe(self.guard(self._on_corpus), names="value")
        self.train_button.on_click(self.guard(lambda _: self.action.start(*self._training())))
        self._on_change()

    # ------------------------------------------------------------ settings
    @property
    def corpus_name(self) -> str:
        return self.corpus_dropdown.value

    @property
    def vocab_size(self) -> int:
        loaded = self._corpora.get(self.corpus_name)
        return loaded.vocab_size if loaded is not None else DEFAULT_VOCAB

    @property
    def config(self) -> ModelConfig:
        """The model the size slider points at."""
        return self._configs[self.size_slider.value]

    @property
    def flops(self) -> float:
        """The budget slider's value as its read-out shows it (FLOPs, 2 significant digits): equal settings, equal runs."""
        return float(f"{self.budget_slider.value:.2g}")

    @property
    def peak_flops(self) -> float:
        """Measured peak matmul FLOP/s of the device at the trainer's precision (measured once, cached on disk)."""
        if self._peak is None:
            self._peak = measure_peak_flops(self.device)
        return self._peak

    def _set_size_options(self, vocab_size: int, near: float) -> None:
        """One slider stop per distinct preset shape between the profile's smallest and largest size."""
        P = self.profile
        lo, hi = math.log10(P.params_min), math.log10(P.params_max)
        n_targets = max(2, round((hi - lo) * SIZES_PER_DECADE) + 1)
        configs: dict[int, ModelConfig] = {}
        for i in range(n_targets):
            cfg = preset(10 ** (lo + (hi - lo) * i / (n_targets - 1)), vocab_size=vocab_size, seq_len=P.seq_len)
            configs.setdefault(count_params(cfg).total, cfg)
        self._configs = dict(sorted(configs.items()))
        options = [(human(n), n) for n in self._configs]
        closest = min(self._configs, key=lambda n: abs(math.log(n / near)))
        self._rebuilding = True  # new options reset the value first: skip read-outs until it is set
        try:
            self.size_slider.options = options
            self.size_slider.value = closest
        finally:
            self._rebuilding = False

    # ------------------------------------------------------------ read-outs (cheap: run on every change)
    def _on_change(self, _change=None) -> None:
        if self._rebuilding:
            return
        self._refresh_readouts()
        if not self.action.running:  # the live curve and status belong to the run in progress
            self._show_stored()

    def _refresh_readouts(self) -> None:
        P, cfg, flops = self.profile, self.config, self.flops
        n = count_params(cfg)
        per_token = flops_per_token(cfg)
        tokens = flops / per_token
        tokens_per_step = P.batch_size * P.seq_len
        steps = int(tokens // tokens_per_step)
        layers = f"{cfg.n_layer} layer{'s' * (cfg.n_layer > 1)}"
        self.params_label.value = (f"<b>{n.total:,} parameters</b> ({n.non_embedding:,} non-embedding) · "
                                   f"d_model {cfg.d_model}, {layers}, {cfg.n_head} heads · "
                                   f"{per_token:,.0f} FLOPs per training token")
        if steps < 1:
            need = tokens_per_step * per_token
            self.budget_label.value = red(f"{flops:.3g} FLOPs is too small for one training step of "
                                           f"{P.batch_size}×{P.seq_len} tokens with this model: it needs {need:.3g}")
        else:
            self.budget_label.value = (f"<b>{flops:.3g} FLOPs</b> → {tokens:,.0f} training tokens = {steps:,} "
                                       f"steps of {P.batch_size}×{P.seq_len} · "
                                       f"{tokens / n.total:.2g} tokens per parameter")
        speed = self.speed(cfg)
        self.time_label.value = (f"≈ <b>{duration(speed.seconds(flops))}</b> on this {self.device.type.upper()} "
                                 f"<i>(an estimate: {speed.flops_per_s / 1e9:,.2g} GFLOP/s, {speed.source}; "
                                 f"its measured {self.precision} peak is {self.peak_flops / 1e9:,.0f} GFLOP/s)</i>")

    def speed(self, cfg: ModelConfig) -> SpeedEstimate:
        """The FLOP rate to expect for `cfg` on this device, from the store's runs of the nearest sizes."""
        if self._speeds is None:
            self._speeds = self.store.speeds(self.device.type, device_name(self.device))
        return estimate_speed(count_params(cfg).total, self.device.type, self.peak_flops, self._speeds)

    @property
    def efficiency(self) -> float:
        """The expected share of the measured peak for the current model (what the time estimate uses)."""
        return self.speed(self.config).flops_per_s / self.peak_flops

    @property
    def efficiency_source(self) -> str:
        """'measured' when the estimate comes from runs on this device in the store, else 'assumed'."""
        return "measured" if self.speed(self.config).source.startswith("measured") else "assumed"

    def _stored_run(self) -> Run | None:
        """A finished run in the store with exactly the current settings, or None: one indexed lookup.

        The key is the one pressing Train would compute (`plan_run` with the arguments `train()` gets),
        so a run is shown as stored exactly when Train would return it from the store. A corpus the
        dropdown names but that is not loaded yet has no fingerprint: its runs are found by the same
        settings with the corpus by name (`settings_key`).
        """
        P, loaded = self.profile, self._corpora.get(self.corpus_name)
        corpus = loaded if loaded is not None else _NotLoaded(self.corpus_name, self.vocab_size)
        try:
            plan = plan_run(self.config, corpus, flops=self.flops, seed=self.seed, batch_size=P.batch_size,
                            eval_sequences=P.eval_sequences, device=self.device)
        except ValueError:  # settings train() refuses (a budget below one step) were never stored
            return None
        if loaded is not None:
            return self.store.get(plan.key, status="ok")
        return self.store.newest("ok", settings=settings_key({**plan.spec, "corpus": self.corpus_name}))

    def _show_stored(self) -> None:
        run = self._stored_run()
        self.progress.value = 1.0 if run is not None else 0.0
        if run is None:
            self.output.outputs = ()
            self.status.value = "Not trained yet with these settings: press <b>Train</b>."
            return
        # Drawing the curve (matplotlib to PNG) is most of a move onto a stored run: a run seen before reuses it.
        floor, label = self._floor_of(run), self._label(run)
        drawn = (run.run_id, run.created_at, floor, label)
        plots = self.__dict__.setdefault("_drawn", {})
        if drawn in plots:
            self.output.outputs = plots[drawn]
        else:
            LiveLossPlot(self.output, floor, label=label).on_end(run)
            if len(plots) >= DRAWN_KEPT:
                plots.pop(next(iter(plots)))  # the oldest
            plots[drawn] = self.output.outputs
        self.status.value = "📦 " + self._summary(run)

    # ------------------------------------------------------------ training (slow: only on the button)
    def load_corpus(self) -> Corpus:
        """The selected corpus, loaded once (building a text corpus's tokenizer can take a while)."""
        name = self.corpus_name
        if name not in self._corpora:
            self.status.value = f"loading corpus {html.escape(name)}…"
            self._corpora[name] = load_corpus(name)
            if self._corpora[name].vocab_size != DEFAULT_VOCAB:
                self._set_size_options(self._corpora[name].vocab_size, self.size_slider.value)
        return self._corpora[name]

    def floor(self, corpus: Corpus) -> float | None:
        """The corpus's entropy floor at the profile's seq_len (nats/token), or None if it has none."""
        return corpus.entropy_for(self.profile.seq_len)[0]

    def _floor_of(self, run: Run) -> float | None:
        loaded = self._corpora.get(run.corpus)
        return self.floor(loaded) if loaded is not None else run.entropy

    def train(self) -> Run:
        """Train the model the sliders describe (or fetch it from the store), drawing the loss live; returns the Run.

        The same as pressing Train, but in this cell: the notebook's Stop interrupts it.
        """
        return self.action.run(*self._training())

    def _training(self):
        """(job, expected_s, done) for `LongAction`: the run the sliders describe, now."""
        cfg, flops, P = self.config, self.flops, self.profile
        def job(ctx) -> Run:
            self.output.outputs = ()
            self.status.value = (f"training {count_params(cfg).total:,} parameters on {flops:.3g} FLOPs · "
                                 f"<b>Stop</b> keeps what was trained so far")
            corpus = self.load_corpus()
            ctx.check()
            floor = self.floor(corpus)
            ctx.check()
            import_model_classes()  # the slow first import, outside the trainer: Stop is honoured right after it
            ctx.check()
            live = LiveLossPlot(self.output, floor, label=f"{human(count_params(self.config).total)} params")
            return train(self.config, corpus, flops=flops, seed=self.seed, batch_size=P.batch_size,
                         eval_sequences=P.eval_sequences, device=self.device, store=self.store, progress=False,
                         callbacks=[live, TrainProgress(ctx)], stop=ctx.stop)

        return job, self.speed(cfg).seconds(flops), self._finished

    def _finished(self, run: Run) -> str:
        """Show a finished (or stopped) run; returns the progress bar's closing text."""
        self.last_run = run
        if not run.from_store and run.status == "ok" and run.wall_s > 0 and run.flops > 0:
            self._speeds = (self._speeds or []) + [(run.n_params, run.flops / run.wall_s)]
            self._refresh_readouts()
        mark = "📦 " if run.from_store else "✅ " if run.status == "ok" else "⚠️ "
        self.status.value = mark + self._summary(run)
        if run.status == "interrupted":
            return f"stopped after {run.steps:,} steps: kept in the store, marked interrupted"
        return "from the store" if run.from_store else f"{run.status}: {run.steps:,} steps"

    def _summary(self, run: Run, floor: float | None = None) -> str:
        floor = self._floor_of(run) if floor is None else floor
        if run.status != "ok":
            return f"run {run.status} after {run.steps} steps ({run.tokens:,} tokens)"
        gap = f", {run.final_val_loss - floor:.3f} above the entropy floor {floor:.3f}" if floor is not None else ""
        where = "from the store (trained earlier)" if run.from_store else "done"
        return (f"{where}: validation loss <b>{run.final_val_loss:.3f} nats/token</b>{gap} · "
                f"{run.steps} steps, {run.tokens:,} tokens in {run.wall_s:.1f} s")

    def _label(self, run: Run) -> str:
        return f"{human(run.n_params)} params"

    def _on_corpus(self, _change=None) -> None:
        loaded = self._corpora.get(self.corpus_name)
        self._set_size_options(loaded.vocab_size if loaded else DEFAULT_VOCAB, self.size_slider.value)
        self._on_change()

    # ------------------------------------------------------------ errors
    def on_error(self, error: BaseException) -> None:
        self.progress.value = 0.0


class _NotLoaded(Corpus):
    """Stands in for a corpus the dropdown names before it is loaded: `plan_run` needs only its vocab size.

    Its fingerprint is unknown, so a plan made with it is looked up by `settings_key` (corpus by name).
    """

    def __init__(self, name: str, vocab_size: int):
        self.name, self.vocab_size, self.fingerprint = name, vocab_size, f"not loaded: {name}"

    def train_batches(self, batch_size, seq_len, seed):
        raise RuntimeError(f"corpus {self.name!r} is not loaded; load it before training")

    def val_batch(self, n_sequences, seq_len):
        raise RuntimeError(f"corpus {self.name!r} is not loaded; load it before training")


def train_panel(corpus: Corpus | str | None = None, store: RunStore | None = None,
                profile: Profile | str | None = None, **kwargs) -> TrainPanel:
    """A training dashboard (an ipywidgets VBox): corpus, model size and FLOPs budget sliders, Train, live loss."""
    return TrainPanel(corpus, store, profile, **kwargs)
