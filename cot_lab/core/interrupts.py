"""Interrupts that are never lost and never leave a half-done state: Stop as a request, SIGINT held over imports.

Two ways to ask a run to stop reach the trainer:
- SIGINT (the notebook's Stop, Ctrl-C) raises KeyboardInterrupt in the main thread, wherever it is;
- a stop request (`threading.Event`-like: anything with `is_set()`) that the trainer polls between steps,
  which is how a panel's Stop button, or a SIGINT relayed to a run in a background thread, stops it.

An import interrupted half-way leaves `transformers` unimportable until the kernel restarts (its lazy
module keeps the failure: "Could not import module 'LlamaConfig'"), so `interrupts_deferred` holds a
SIGINT that arrives during one and raises it as soon as the import is done.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class StopRequested(KeyboardInterrupt):
    """Raised inside a run when its stop request is set: handled exactly like the notebook's Stop."""


def check_stop(stop) -> None:
    """Raise StopRequested if `stop` (None, or anything with `is_set()`) has been set."""
    if stop is not None and stop.is_set():
        raise StopRequested


def validate_stop(stop):
    """`stop` itself if it is None or has an `is_set()` method (a threading.Event); else a ValueError."""
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise ValueError(f"stop={stop!r} must be None or a threading.Event (anything with is_set())")
    return stop


@contextmanager
def interrupts_deferred():
    """Hold a SIGINT that arrives inside the block and deliver it at the block's end (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only delivered to the main thread: nothing to hold here
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):
        yield
        return
    held: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held:
            if callable(previous):
                previous(signal.SIGINT, None)
            else:  # SIG_DFL: what Python does without a handler
                raise KeyboardInterrupt
