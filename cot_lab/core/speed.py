"""How long a run will take on this machine, before it starts: the FLOP rate of stored runs of similar size.

Small models are overhead-bound (Python, autograd, kernel launches per step), so their FLOP rate is a
small fraction of the device's matmul peak and grows with size: a 30K-parameter model reached ~1%
of this 2-core CPU's peak, a 10M one ~20%. A rate measured on the nearest sizes is therefore the
estimate; with no run on this device yet, the peak times an assumed efficiency stands in.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from cot_lab.core.device import ASSUMED_EFFICIENCY

NEAREST = 3  # stored runs the estimate takes the median rate of


@dataclass(frozen=True)
class SpeedEstimate:
    """flops_per_s: expected FLOP/s of wall time (evaluation included); source: how it was found, for people."""

    flops_per_s: float
    source: str

    def seconds(self, flops: float) -> float:
        """Expected wall seconds of a run of `flops` training FLOPs."""
        return flops / self.flops_per_s


# With no run on this device yet, on a CPU: the share of the matmul peak grows about as the square root of
# the size. Measured: the shipped laptop sweep (2-core EPYC) ran at 2.6 GFLOP/s at 5K parameters and 28 at
# 284K (10.8x over 57x in size: exponent 0.59); on a 2-core Xeon with a 164 GFLOP/s bf16 peak, a 668K
# model trained at 48 GFLOP/s, 29% of it (this curve says 31%). GPUs and MPS keep the flat assumption.
CPU_EFFICIENCY_AT_30K, CPU_EFFICIENCY_MAX = 0.065, 0.4


def assumed_efficiency(n_params: float, device_type: str) -> float:
    """The share of the measured peak a model of `n_params` is assumed to reach before any run is measured."""
    if device_type == "cpu":
        return min(CPU_EFFICIENCY_MAX, CPU_EFFICIENCY_AT_30K * math.sqrt(n_params / 3e4))
    return ASSUMED_EFFICIENCY.get(device_type, 0.1)


def estimate_speed(n_params: float, device_type: str, peak_flops: float, measured=()) -> SpeedEstimate:
    """The FLOP rate to expect for a model of `n_params` parameters.

    measured: (parameters, FLOP/s) of finished runs on this device (`RunStore.speeds(...)`); the median
    rate of the `NEAREST` closest in log-size is used, each scaled by the square root of the size ratio
    (between the two sizes above the rate grew ~20x over ~330x in size: an exponent of ~0.5), the ratio
    clamped to [1/4, 4] so that a far-off run moves the estimate at most 2x; never above the peak.
    """
    if not measured:
        efficiency = assumed_efficiency(n_params, device_type)
        return SpeedEstimate(peak_flops * efficiency, f"assumed: {efficiency:.0%} of the measured peak for this size")
    nearest = sorted(measured, key=lambda m: abs(math.log(m[0] / n_params)))[:NEAREST]
    rate = statistics.median(r * min(4.0, max(0.25, n_params / n)) ** 0.5 for n, r in nearest)
    rate = min(rate, peak_flops)
    return SpeedEstimate(rate, f"measured on your {len(nearest)} nearest-size run{'s' * (len(nearest) > 1)}")


def speed_for(store, device=None):
    """A function n_params -> SpeedEstimate for `device`, from `store`'s runs: one query and one peak look-up,
    however many sizes it is then asked about (a sweep's ETA asks for each of its points)."""
    from cot_lab.core.device import device_name, measure_peak_flops, resolve_device

    dev = resolve_device(device)
    measured = store.speeds(dev.type, device_name(dev)) if store is not None else []
    peak = measure_peak_flops(dev)
    return lambda n_params: estimate_speed(n_params, dev.type, peak, measured)


def expected_seconds(store, n_params: float, flops: float, device=None) -> float:
    """Expected wall seconds of training `flops` FLOPs of an `n_params` model on `device`, from `store`'s runs."""
    return speed_for(store, device)(n_params).seconds(flops)
