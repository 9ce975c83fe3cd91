"""How true the progress bars' ETAs are: the bar's "about m:ss left" against the time that was really left.

Runs one panel training (notebook 00's TrainPanel) and one sweep (notebook 02's SweepButton) from an
empty store, reads the bar's text every second, and prints, at 10%, 25% and 50% of the way, the
estimated seconds left over the true seconds left (1.00 is perfect; the issue measured 2.5 for the sweep).

    COT_LAB_PROFILE=smoke .venv/bin/python benchmarks/eta_accuracy.py
"""
from __future__ import annotations

import os
import re
import tempfile
import time

os.environ.setdefault("COT_LAB_HOME", tempfile.mkdtemp(prefix="cot-lab-eta-"))

import cot_lab as cl  # noqa: E402
from cot_lab.scaling import sweep  # noqa: E402
from cot_lab.scaling.panel import SweepButton  # noqa: E402
from cot_lab.start.panel import train_panel  # noqa: E402

LEFT = re.compile(r"about (?:(\d+):)?(\d+):(\d\d) left")


def seconds_left(text: str) -> float | None:
    m = LEFT.search(text)
    if not m:
        return None
    hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return 3600 * hours + 60 * minutes + seconds


def watch(action, start) -> list[tuple[float, float, float | None]]:
    """Start the action, sample (elapsed, bar fraction, seconds left) every second until it ends."""
    samples, t0 = [], time.monotonic()
    thread = start()
    while thread.is_alive():
        samples.append((time.monotonic() - t0, action.bar.bar.value, seconds_left(action.bar.text.value)))
        thread.join(1.0)
    return [(t, f, left) for t, f, left in samples] + [(time.monotonic() - t0, 1.0, 0.0)]


def report(name: str, samples) -> None:
    total = samples[-1][0]
    cells = []
    for mark in (0.1, 0.25, 0.5):
        hit = next(((t, left) for t, f, left in samples if f >= mark and left is not None), None)
        if hit:
            t, left = hit
            cells.append(f"{mark:.0%}: {left / max(total - t, 1e-9):.2f}")
    first = next(((t, left) for t, _, left in samples if left is not None), None)
    start = f"first ETA {first[1]:.0f} s at {first[0]:.0f} s" if first else "no ETA shown"
    print(f"{name:8s} took {total:6.1f} s · {start} · ETA / true time left at " + ", ".join(cells))


def main() -> None:
    profile = cl.profile()
    corpus = cl.load_corpus(profile.corpus)
    store = cl.RunStore()
    panel = train_panel(corpus, store=store, profile=profile)
    panel.budget_slider.value = profile.flops_max / 3
    report("train", watch(panel.action, lambda: panel.action.start(*panel._training())))
    button = SweepButton(sweep.profile_plan(profile, corpus), corpus, store, eval_sequences=profile.eval_sequences)
    report("sweep", watch(button.action, lambda: button.action.start(*button._sweep())))


if __name__ == "__main__":
    main()
