"""A panel's long action (train, sweep, prune, measure): one Stop button, one progress bar with an ETA.

Started from a button, the action runs in a background thread. The kernel then stays free to handle the
panel's Stop button (a widget message: a busy kernel would only read it after the action ended) and
the notebook's Stop (SIGINT: relayed to the action as a stop request, see `_relay_sigint`). Both
reach the trainer as `stop=` (a `threading.Event`), which it polls every step and which ends a run
exactly as an interrupt does: kept in the store, marked "interrupted".

Started from a cell (`panel.train()`), the action runs in the cell itself, as any code does: the notebook's
Stop interrupts it, the panel's Stop button is not needed (and stays disabled), the same bar shows progress.
"""
from __future__ import annotations

import contextvars
import html
import signal
import sys
import threading
import time

import ipywidgets as W

from cot_lab.core.callbacks import Callback, TrainState
from cot_lab.core.interrupts import StopRequested, check_stop
from cot_lab.ui.format import clock
from cot_lab.ui.panel import css_classes

# Weight of the measured rate against the estimate made before starting: equal at 5% progress.
TRUST_MEASURED_AT = 0.05


class Eta:
    """Seconds left of an action, from an estimate made before it started and the progress measured since.

    expected_s: the estimated seconds the progress part takes (None: no estimate, wait for a measurement).
    Time before the first progress report (imports, data, set-up) is not extrapolated: the rate is
    measured from the first report on, and blended with the estimate, trusting the measurement more
    as progress grows.
    """

    def __init__(self, expected_s: float | None = None, *, clock=time.monotonic):
        self.expected_s, self.clock = expected_s, clock
        self.started = clock()
        self._first: tuple[float, float] | None = None  # (time, fraction) of the first report

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def remaining_s(self, fraction: float) -> float | None:
        """Estimated seconds left at `fraction` (0..1) done, or None when nothing is known yet."""
        now, fraction = self.clock(), min(1.0, max(0.0, fraction))
        if self._first is None or fraction <= 0.0:  # the rate is measured from the last moment of no progress
            self._first = (now, fraction)
        t0, p0 = self._first
        prior = None if self.expected_s is None else (1.0 - fraction) * self.expected_s
        if fraction <= p0 or now <= t0:
            return prior
        measured = (1.0 - fraction) * (now - t0) / (fraction - p0)
        if prior is None:
            return measured
        weight = (fraction - p0) / (fraction - p0 + TRUST_MEASURED_AT)
        return weight * measured + (1.0 - weight) * prior


class ActionBar(W.HBox):
    """A progress bar and one line of text: 'step 120 of 817 · 0:16 elapsed · about 1:34 left'."""

    def __init__(self):
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="240px"))
        self.text = W.HTML()
        self.eta: Eta | None = None
        self._shown: tuple | None = None  # the last show() arguments, for tick()
        self._lock = threading.Lock()  # the action's thread and the ticking thread both write the text
        super().__init__([self.bar, self.text])
        css_classes((self.bar, "bar"), (self.text, "eta"))

    def begin(self, expected_s: float | None, what: str = "starting…") -> None:
        self.eta = Eta(expected_s)
        self.bar.bar_style = ""
        self.bar.value = 0.0
        self.show(0.0, what, started=False)

    def show(self, fraction: float, what: str, *, started: bool = True) -> None:
        """Set the bar to `fraction` (0..1) with `what` (HTML) and the elapsed time and ETA."""
        with self._lock:
            self._show(fraction, what, started)

    def _show(self, fraction: float, what: str, started: bool) -> None:
        self._shown = (fraction, what, started)
        eta = self.eta or Eta()
        self.bar.value = min(1.0, max(0.0, fraction))
        if started:
            left = eta.remaining_s(fraction)
            tail = f" · about {clock(left)} left" if left is not None else ""
        else:  # set-up (imports, data) is not in the estimate: say what the estimate is of
            tail = f" · then about {clock(eta.expected_s)} of work" if eta.expected_s is not None else ""
        self.text.value = f"{what} · {clock(eta.elapsed_s())} elapsed{tail}"

    def tick(self) -> None:
        """Show the elapsed time again (once a second while set-up or a slow step reports nothing)."""
        with self._lock:
            if self._shown is not None:
                self._show(*self._shown)

    def end(self, what: str, ok: bool) -> None:
        with self._lock:
            self._shown = None
            self._end(what, ok)

    def _end(self, what: str, ok: bool) -> None:
        elapsed = clock(self.eta.elapsed_s()) if self.eta else "0:00"
        self.bar.bar_style = "success" if ok else "warning"
        if ok:
            self.bar.value = 1.0
        self.text.value = f"{what} · took {elapsed}"


class ActionContext:
    """What a running action's job gets: the stop request to pass on (`stop=`), and `report` for its bar."""

    def __init__(self, bar: ActionBar, stop: threading.Event):
        self.bar, self.stop = bar, stop
        self._told_at = 0.0

    def report(self, fraction: float, what: str, *, force: bool = False) -> None:
        """Progress `fraction` (0..1) with a short text (HTML); throttled to 10 updates a second."""
        now = time.monotonic()
        if force or now - self._told_at >= 0.1:
            self._told_at = now
            self.bar.show(fraction, what)

    def check(self) -> None:
        """Raise StopRequested if Stop was pressed (for jobs with their own loops)."""
        check_stop(self.stop)


class TrainProgress(Callback):
    """A trainer callback that reports each step to an action's bar: 'step 120 of 817 · loss 4.321'."""

    def __init__(self, ctx: ActionContext, prefix: str = ""):
        self.ctx, self.prefix = ctx, prefix

    def on_step(self, state: TrainState) -> None:
        of = f" of {state.total_steps:,}" if state.total_steps else ""
        self.ctx.report(state.progress, f"{self.prefix}step {state.step:,}{of} · loss {state.loss:.3f}")

    def on_eval(self, state: TrainState, val_loss: float) -> None:
        self.ctx.report(state.progress, f"{self.prefix}step {state.step:,} · validation loss {val_loss:.3f}",
                        force=True)


def unfinished_run(status: W.HTML, run, *, advice: str = "") -> str | None:
    """For a run that did not finish ("interrupted", "diverged"): say so in `status` (with `advice`) and return the
    action bar's closing text; None for a finished ("ok") run, which the panel reports itself."""
    if run.status == "ok":
        return None
    status.value = html.escape(f"⚠️ run {run.status} after {run.steps:,} steps: not a measurement"
                               + (f"; {advice}" if advice else ""))
    return f"stopped after {run.steps:,} steps: kept in the store, marked {run.status}"


class LongAction:
    """Runs a panel's long jobs one at a time, with `start_button`, a Stop button and one ActionBar.

    `widget` (the buttons and the bar) goes among the panel's children. `start(job, ...)` runs
    `job(ctx)` in a background thread (for a button), `run(job, ...)` runs it here (for a cell); then
    `done(result)`, which may return the bar's closing text. Errors go to the panel's status line.
    """

    def __init__(self, panel, start_button: W.Button, *, name: str = "action"):
        self.panel, self.start_button, self.name = panel, start_button, name
        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger", disabled=True,
                                    tooltip="stop now: what was trained is kept, marked interrupted",
                                    layout=W.Layout(width="90px"))
        self.bar = ActionBar()
        self.bar.layout.visibility = "hidden"  # no empty bar before the first action
        self.widget = W.HBox([start_button, self.stop_button, self.bar])
        css_classes((self.stop_button, "stop"))
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.stop_button.on_click(lambda _: self.request_stop())

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def request_stop(self) -> None:
        """What the Stop button does: ask the running job to stop (it does within a step)."""
        self._stop.set()
        self.stop_button.disabled = True
        self.bar.text.value = "stopping…"

    def start(self, job, expected_s: float | None = None, done=None) -> threading.Thread:
        """Run `job(ctx)` in a background thread; `done(result)` after it succeeds. For a button's click."""
        self._begin(expected_s)
        _relay_sigint()
        self.stop_button.disabled = False
        context = contextvars.copy_context()  # the click's message stays the parent of what the job displays
        self.thread = threading.Thread(target=context.run, args=(self._body, job, done), daemon=True,
                                       name=f"cot-lab {self.name}")
        _RUNNING.add(self)
        self.thread.start()
        threading.Thread(target=self._tick, args=(self.thread,), daemon=True).start()
        return self.thread

    def _tick(self, thread: threading.Thread) -> None:
        while not self._stop.is_set() and thread.is_alive():
            thread.join(1.0)
            if thread.is_alive() and not self._stop.is_set():
                self.bar.tick()

    def run(self, job, expected_s: float | None = None, done=None):
        """Run `job(ctx)` now, in this thread, and return its result. For a cell: the notebook's Stop stops it."""
        self._begin(expected_s)
        return self._body(job, done, reraise=True)

    def _begin(self, expected_s: float | None) -> None:
        if self.running:
            raise ValueError(f"a {self.name} started from the button is still running: press Stop, or wait for it")
        self._stop = threading.Event()
        self.start_button.disabled = True
        self.bar.layout.visibility = "visible"
        self.bar.begin(expected_s)
        self.panel.clear_error()

    def _body(self, job, done, reraise: bool = False):
        """Run the job; the bar ends with `done(result)`'s text (or "done"), "stopped" or "failed"."""
        ending, ok = "failed", False
        try:
            result = job(ActionContext(self.bar, self._stop))
            ending = (done(result) if done is not None else None) or "done"
            ok = not self._stop.is_set()
            return result
        except KeyboardInterrupt:  # StopRequested from the job's own check, or the notebook's Stop in a cell
            ending = "stopped"
            self.panel.status.value = f"⏹ {self.name} stopped before it began: nothing was done, nothing kept"
            if reraise and not isinstance(sys.exc_info()[1], StopRequested):
                raise
            return None
        except Exception as error:
            self.panel.show_error(error)
            if reraise:
                raise
            return None
        finally:
            _RUNNING.discard(self)
            self.stop_button.disabled = True
            self.start_button.disabled = False
            self.bar.end(ending, ok)


# ---------------------------------------------------------------------------------------------- SIGINT
_RUNNING: set[LongAction] = set()
_previous_handler = signal.SIG_IGN


def _on_sigint(signum, frame) -> None:
    """Stop every action running in the background; with none, do what the handler before ours did."""
    running = list(_RUNNING)
    for action in running:
        action.request_stop()
    if running:
        return
    if callable(_previous_handler):
        _previous_handler(signum, frame)
    elif _previous_handler == signal.SIG_DFL:
        raise KeyboardInterrupt


def _relay_sigint() -> None:
    """Make the notebook's Stop reach background actions while the kernel is idle (main thread only).

    ipykernel ignores SIGINT between messages and installs `default_int_handler` only while it handles
    one, restoring what it saved afterwards: so inside a handler (a button click) our handler becomes
    the one it restores. A SIGINT during another cell still interrupts that cell, as always.
    """
    global _previous_handler
    if threading.current_thread() is not threading.main_thread():
        return
    kernel = _kernel()
    if kernel is not None and hasattr(kernel, "saved_sigint_handler"):
        if kernel.saved_sigint_handler is not _on_sigint:
            _previous_handler, kernel.saved_sigint_handler = kernel.saved_sigint_handler, _on_sigint
    elif signal.getsignal(signal.SIGINT) is not _on_sigint:
        _previous_handler = signal.signal(signal.SIGINT, _on_sigint)


def _kernel():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return getattr(shell, "kernel", None)
