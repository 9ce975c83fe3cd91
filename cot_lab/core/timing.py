"""Wall-clock timing that is fair to compare: the median of repeated calls, timed side by side in rounds.

Shared by the topics that measure speed (compression latency, serving speed), so that every ratio the
course prints is measured the same way. Seconds, wall clock; CUDA work is synchronised around each call
(kernels are asynchronous: without it a timer would measure the launch, not the work).
"""
from __future__ import annotations

import statistics
import time

import torch

from cot_lab.core import validate


def interleaved_medians(fns: dict, *, repeats: int, warmup: int, device: torch.device | None = None,
                       clock=time.perf_counter) -> dict[str, float]:
    """Median wall seconds of each callable of {label: fn}, timed side by side in rounds.

    `warmup` untimed rounds, then `repeats` timed rounds; every round calls each fn once, in the dict's order
    (A B A B ... for two), so load that comes and goes on the machine lands on all of them alike. `clock`
    (seconds) is there for tests; CUDA work is synchronised around every timed call.
    """
    repeats = validate.integer("repeats", repeats, hint="timed rounds, e.g. 5")
    warmup = validate.integer("warmup", warmup, low=0, hint="untimed rounds first, e.g. 2")
    if not isinstance(fns, dict) or not fns or not all(callable(f) for f in fns.values()):
        raise ValueError("fns must be a non-empty dict {label: callable} of the calls to time side by side")
    sync = torch.cuda.synchronize if device is not None and device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {label: [] for label in fns}
    for _ in range(repeats):
        for label, fn in fns.items():
            sync()
            t0 = clock()
            fn()
            sync()
            times[label].append(clock() - t0)
    return {label: statistics.median(t) for label, t in times.items()}
