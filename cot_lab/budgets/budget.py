"""A compute budget in four units: FLOPs, GPU-hours at an MFU, USD and kWh.

FLOPs = peak FLOP/s x MFU x seconds, with the GPU's dense tensor-core peak from the catalog
in `cot_lab.budgets.gpus`. The price is the catalog's dated on-demand price unless you pass your own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from cot_lab.budgets.gpus import GPU, gpu as _lookup_gpu
from cot_lab.core import validate


def _price(g: GPU, usd_per_hour: float | None) -> float:
    if usd_per_hour is not None:
        return validate.number("usd_per_hour", usd_per_hour, low_open=False, hint="e.g. 2.5 (USD per GPU-hour)")
    if g.usd_per_hour is None:
        raise ValueError(f"usd_per_hour=None: the catalog has no price for {g.name}; "
                         f"pass usd_per_hour= (USD per GPU-hour, e.g. 3.5)")
    return g.usd_per_hour


@dataclass(frozen=True)
class Budget:
    """One training budget seen as FLOPs, GPU-hours, USD and kWh.

    Energy is board power only: kWh = hours x watts x pue / 1000. With pue=1.0 (the default)
    it excludes the host CPU, networking and cooling; pass the data centre's PUE to add them.
    """
    flops: float
    gpu: str | None          # catalog name, or None for a device given only by the numbers
    hours: float             # GPU-hours
    mfu: float               # model FLOPs utilisation, fraction of the dense peak
    usd_per_hour: float      # USD per GPU-hour
    watts: float             # board power
    pue: float = 1.0         # power usage effectiveness; 1.0 = board power only

    def __post_init__(self) -> None:
        validate.number("flops", self.flops, hint="e.g. 1e18")
        validate.number("hours", self.hours, hint="GPU-hours, e.g. 1.0")
        _check_mfu(self.mfu)
        validate.number("usd_per_hour", self.usd_per_hour, low_open=False, hint="e.g. 2.5 (USD per GPU-hour)")
        validate.number("watts", self.watts, hint="board power, e.g. 700")
        validate.number("pue", self.pue, low=1.0, low_open=False, hint="1.0 counts board power only")
        if self.gpu is not None:
            g = _lookup_gpu(self.gpu)
            object.__setattr__(self, "gpu", g.name)  # canonical spelling for display and keys
            expected = _flops_per_hour(g, self.mfu) * self.hours
            if not math.isclose(self.flops, expected, rel_tol=1e-9):
                raise ValueError(f"flops={self.flops!r} does not match {self.hours:g} h of {g.name} at "
                                 f"mfu={self.mfu:g} ({expected:.4g} FLOPs); build it with "
                                 f"Budget.from_flops / from_gpu_hours / from_usd")

    @property
    def gpu_hours(self) -> float:
        """GPU-hours."""
        return self.hours

    @property
    def usd(self) -> float:
        """Rental cost in USD."""
        return self.hours * self.usd_per_hour

    @property
    def kwh(self) -> float:
        """Energy in kWh: board power x hours (x PUE)."""
        return self.hours * self.watts * self.pue / 1000

    @classmethod
    def from_flops(cls, flops: float, gpu: str = "H100-SXM", mfu: float = 0.4,
                   usd_per_hour: float | None = None, pue: float = 1.0) -> Budget:
        """The budget that delivers `flops` FLOPs on `gpu` at `mfu`."""
        g = _lookup_gpu(gpu)
        flops = validate.number("flops", flops, hint="e.g. 1e18")
        hours = flops / _flops_per_hour(g, _check_mfu(mfu))
        return cls(flops, g.name, hours, mfu, _price(g, usd_per_hour), g.watts, pue)

    @classmethod
    def from_gpu_hours(cls, gpu: str, hours: float, mfu: float = 0.4,
                       usd_per_hour: float | None = None, pue: float = 1.0) -> Budget:
        """The budget of `hours` GPU-hours on `gpu` at `mfu`."""
        g = _lookup_gpu(gpu)
        hours = validate.number("hours", hours, hint="GPU-hours, e.g. 1.0")
        flops = _flops_per_hour(g, _check_mfu(mfu)) * hours
        return cls(flops, g.name, hours, mfu, _price(g, usd_per_hour), g.watts, pue)

    @classmethod
    def from_usd(cls, usd: float, gpu: str, mfu: float = 0.4,
                 usd_per_hour: float | None = None, pue: float = 1.0) -> Budget:
        """The budget that `usd` dollars rent on `gpu` at `mfu`."""
        g = _lookup_gpu(gpu)
        usd = validate.number("usd", usd, hint="US dollars, e.g. 100")
        price = _price(g, usd_per_hour)
        if price == 0:
            raise ValueError("usd_per_hour=0: a free GPU has no budget in dollars; "
                             "use Budget.from_gpu_hours or pass a positive usd_per_hour")
        hours = usd / price
        return cls(_flops_per_hour(g, _check_mfu(mfu)) * hours, g.name, hours, mfu, price, g.watts, pue)

    def __str__(self) -> str:
        h = f"{self.hours:,.0f}" if self.hours >= 100 else f"{self.hours:.3g}"
        pue = "" if self.pue == 1.0 else f" (PUE {self.pue:g})"
        return (f"{self.flops:.2e} FLOPs = {h} h of {self.gpu or 'the GPU'} at {self.mfu * 100:.3g}% MFU"
                f" = ${self.usd:,.2f} = {self.kwh:,.2f} kWh{pue}")


def _check_mfu(mfu: float) -> float:
    return validate.number("mfu", mfu, high=1.0, hint="a fraction of the dense peak, e.g. 0.4")


def _flops_per_hour(g: GPU, mfu: float) -> float:
    # One expression for every constructor, so from_flops(from_gpu_hours(...).flops) is exact.
    return g.peak_flops * mfu * 3600
