"""The base of every notebook panel: one status line, one way to show an error, callbacks that never fail silently.

ipywidgets sends an exception raised inside a slider or button callback to a log the student never sees,
so every panel wraps its callbacks with `guard`: the error's message goes to the panel's status line in
red, and for an unexpected error (a bug, not a bad setting) the traceback goes to its `details` output.
"""
from __future__ import annotations

import functools
import html
import traceback

import ipywidgets as W

from cot_lab.ui.format import red

# A bad setting (a value out of range, a missing file) is the student's to fix: its message is enough.
EXPECTED_ERRORS = (ValueError, FileNotFoundError)


def css_classes(*named) -> None:
    """Give each (widget, name) pair the CSS class `cot-lab-<name>`: what the browser tests select on."""
    for widget, name in named:
        widget.add_class(f"cot-lab-{name}")


def error_html(error: BaseException) -> str:
    """One line of HTML for an error: '❌ ValueError: ...' in the warning colour."""
    return red(f"❌ {type(error).__name__}: {html.escape(str(error))}")


class Panel(W.VBox):
    """A VBox with `status` (an HTML line), `details` (an Output for tracebacks) and `last_error`.

    Subclasses build their widgets, include `self.status` and `self.details` among their children, and
    wrap every callback in `self.guard(...)`. Override `on_error` to blank read-outs an error makes stale.
    """

    last_error: BaseException | None = None

    # Created on first use, so a subclass can place them among its children before VBox.__init__ runs,
    # or set its own (an Output it already has) instead.
    @property
    def status(self) -> W.HTML:
        if "_status" not in self.__dict__:
            self.__dict__["_status"] = W.HTML()
        return self.__dict__["_status"]

    @status.setter
    def status(self, widget: W.HTML) -> None:
        self.__dict__["_status"] = widget

    @property
    def details(self) -> W.Output:
        if "_details" not in self.__dict__:
            self.__dict__["_details"] = W.Output()
        return self.__dict__["_details"]

    @details.setter
    def details(self, widget: W.Output) -> None:
        self.__dict__["_details"] = widget

    def guard(self, fn):
        """`fn` wrapped so that an exception is shown in the panel (and kept in `last_error`), not lost."""
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as error:  # shown, not swallowed: the panel is where the student is looking
                self.show_error(error)
                return None
        return wrapper

    def show_error(self, error: BaseException) -> None:
        """Put `error` in the status line; an unexpected one also gets its traceback in `details`."""
        self.last_error = error
        self.on_error(error)
        self.status.value = error_html(error)
        if not isinstance(error, EXPECTED_ERRORS):
            self.details.append_stderr("".join(traceback.format_exception(error)))

    def clear_error(self) -> None:
        """Forget the last error and empty the status line and details."""
        self.last_error = None
        self.status.value = ""
        self.details.outputs = ()

    def on_error(self, error: BaseException) -> None:
        """Called before an error is shown; panels override it to blank stale read-outs."""
