"""Notebook 01's dashboard: what a compute budget is in FLOPs, USD and kWh, and what it buys.

`budget_readout` is the arithmetic, with no widgets and no training: GPU-hours at an MFU ->
FLOPs, USD, kWh (`cot_lab.Budget`); a model size -> training tokens at that budget, tokens per
parameter and how long this machine would take; and the compute-optimal model that the
Chinchilla and Epoch laws name for that budget. `budget_panel` wires core ipywidgets to it, so
every slider move recomputes the read-outs at once.
"""
from __future__ import annotations

import html
import math

import ipywidgets as W

from .accounting import count_params, flops_per_token
from .budget import Budget
from .config import preset
from .hardware import GPUS, autocast_dtype, gpu as lookup_gpu, measure_peak_flops, precision_name, resolve_device
from .profiles import Profile, profile as get_profile
from .scaling import CHINCHILLA, EPOCH_REPLICATION
from .widgets import ASSUMED_EFFICIENCY, DEFAULT_VOCAB, _duration, _human, _red, css_classes

# The two published laws the panel compares; both assume C = 6 N D and were fitted on MassiveText.
LAWS = {"Chinchilla": CHINCHILLA, "Epoch": EPOCH_REPLICATION}
SIZE_RANGE = (1e4, 1e9)   # model-size slider, parameters; preset() shapes stop near 1.6e9
SIZES_PER_DECADE = 6
HOURS_RANGE = (1e-2, 1e6)  # GPU-hours slider: a quick test up to a large pre-training run
CONTEXTS = (128, 512, 2048, 8192)  # context-length choices, tokens; the profile's own is added
MFU_RANGE = (0.05, 0.8)    # MFU slider; nanoGPT's GPT-2 reached 0.37 on one A100 (transformer_sizing.ipynb)


def _positive(name: str, value, hint: str, high: float = math.inf) -> float:
    """`value` as a float if it is a number in (0, high]; else a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= high or value == math.inf:
        bound = "" if high == math.inf else f" and at most {high:g}"
        raise ValueError(f"{name}={value!r} must be a positive finite number{bound}; {hint}")
    return float(value)


def _within(name: str, value, bounds: tuple[float, float]) -> float:
    """`value` if a slider with `bounds` can show it (a slider would silently clip it); else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name}={value!r} must lie between {bounds[0]:g} and {bounds[1]:g} (the slider's range)")
    return float(value)


def budget_readout(gpu: str, hours: float, mfu: float = 0.4, usd_per_hour: float | None = None,
                   n_params: float = 1e8, *, vocab_size: int = DEFAULT_VOCAB, seq_len: int = 128,
                   local_peak_flops: float | None = None, local_mfu: float = ASSUMED_EFFICIENCY["cpu"]) -> dict:
    """What `hours` GPU-hours of `gpu` at `mfu` are worth and buy, as plain numbers.

    Keys: gpu, hours, mfu, usd_per_hour (None: no price known), price_source, price_date,
    flops (FLOPs), usd (USD, None without a price), kwh (board power only), watts;
    config (the `preset` shape nearest `n_params`), n_params (its exact total), flops_per_token
    (training FLOPs per token, Chinchilla App. F accounting at `seq_len`), tokens, tokens_per_param;
    local_peak_flops (FLOP/s), local_mfu, local_seconds (the budget on this machine; None without a peak);
    laws: {"Chinchilla" | "Epoch": {n_opt, d_opt, tokens_per_param, loss_opt, loss_model, source}},
    losses in nats/token on the laws' own data (MassiveText), not on this kit's corpora.
    """
    g = lookup_gpu(gpu)
    priced = usd_per_hour is not None or g.usd_per_hour is not None
    from_catalog = usd_per_hour is None or usd_per_hour == g.usd_per_hour
    # Budget needs a price; a GPU the catalog has no price for still has FLOPs and kWh, so those are
    # computed at a placeholder price of 0 and the USD is reported as unknown (None), never as $0.
    budget = Budget.from_gpu_hours(g.name, hours, mfu, usd_per_hour if priced else 0.0)
    cfg = preset(n_params, vocab_size=vocab_size, seq_len=seq_len)
    n_total = count_params(cfg).total
    per_token = flops_per_token(cfg, "chinchilla")
    tokens = budget.flops / per_token
    local_seconds = None
    if local_peak_flops is not None:
        local_peak_flops = _positive("local_peak_flops", local_peak_flops, "FLOP/s, e.g. cl.measure_peak_flops()")
        local_mfu = _positive("local_mfu", local_mfu, "a fraction of the measured peak, e.g. 0.05", high=1.0)
        local_seconds = budget.flops / (local_peak_flops * local_mfu)
    laws = {}
    for name, law in LAWS.items():
        n_opt, d_opt = law.optimal(budget.flops)
        laws[name] = dict(n_opt=n_opt, d_opt=d_opt, tokens_per_param=d_opt / n_opt, loss_opt=law.loss(n_opt, d_opt),
                          loss_model=law.loss(n_total, tokens), source=law.source)
    return dict(
        gpu=g.name, hours=budget.hours, mfu=budget.mfu, usd_per_hour=budget.usd_per_hour if priced else None,
        price_source=g.price_source if from_catalog else "your price",
        price_date=g.price_date if from_catalog else None,
        flops=budget.flops, usd=budget.usd if priced else None, kwh=budget.kwh, watts=budget.watts,
        config=cfg, n_params=n_total, flops_per_token=per_token, tokens=tokens, tokens_per_param=tokens / n_total,
        local_peak_flops=local_peak_flops, local_mfu=local_mfu if local_peak_flops is not None else None,
        local_seconds=local_seconds, laws=laws,
    )


def long_duration(seconds: float) -> str:
    """A duration for people: seconds up to hours as the training panel writes them, then days, then years."""
    if seconds < 2 * 86400:
        return _duration(seconds)
    if seconds < 365.25 * 86400:
        return f"{seconds / 86400:.3g} days"
    return f"{seconds / (365.25 * 86400):,.3g} years"


def _parse_price(text: str) -> float | None:
    """The price box's text as USD per GPU-hour; empty means the catalog's price."""
    text = text.strip().removeprefix("$")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"usd_per_hour={text!r} is not a number; type USD per GPU-hour such as 2.5, "
                         f"or leave the box empty for the catalog's price") from None


class BudgetPanel(W.VBox):
    """Sliders for GPU, GPU-hours, MFU, price and model size, with read-outs in FLOPs, USD, kWh, tokens and time."""

    def __init__(self, profile: Profile | str | None = None, *, gpu: str = "H100-SXM", hours: float = 1.0,
                 mfu: float = 0.4, n_params: float = 1e8, device=None, peak_flops: float | None = None):
        self.profile = get_profile(profile)
        self.device = resolve_device(device)
        self.precision = precision_name(autocast_dtype(self.device))
        # Training reaches only a fraction of the matmul peak, less for tiny models (see widgets.ASSUMED_EFFICIENCY).
        self.local_mfu = ASSUMED_EFFICIENCY.get(self.device.type, 0.1)
        self.peak_flops = (measure_peak_flops(self.device) if peak_flops is None
                           else _positive("peak_flops", peak_flops, "FLOP/s, or None to measure this machine"))
        n_params = _positive("n_params", n_params, "model size in parameters, e.g. 1e8")
        self.readout: dict | None = None
        self.last_error: BaseException | None = None

        wide, style = W.Layout(width="560px"), {"description_width": "130px"}
        self.gpu_dropdown = W.Dropdown(options=list(GPUS), value=lookup_gpu(gpu).name, description="GPU", style=style)
        self.hours_slider = W.FloatLogSlider(value=_within("hours", hours, HOURS_RANGE), base=10,
                                             min=math.log10(HOURS_RANGE[0]), max=math.log10(HOURS_RANGE[1]),
                                             step=0.05, description="GPU-hours", readout_format=".3g",
                                             layout=wide, style=style)
        self.mfu_slider = W.FloatSlider(value=_within("mfu", mfu, MFU_RANGE), min=MFU_RANGE[0], max=MFU_RANGE[1],
                                        step=0.01, description="MFU", readout_format=".0%", layout=wide, style=style)
        # A text box, not a number box: empty means "the catalog's price", and some GPUs have none.
        self.price_text = W.Text(description="USD per GPU-hour", continuous_update=False, style=style)
        self.size_slider = W.SelectionSlider(options=self._size_options(), description="model size",
                                             layout=wide, style=style)
        self.context_dropdown = W.Dropdown(options=sorted({*CONTEXTS, self.profile.seq_len}),
                                           value=self.profile.seq_len, description="context (tokens)", style=style)
        stops = [v for _, v in self.size_slider.options]
        self.size_slider.value = min(stops, key=lambda v: abs(math.log(v / n_params)))
        self.budget_label, self.price_label, self.model_label = W.HTML(), W.HTML(), W.HTML()
        self.local_label, self.laws_label, self.status = W.HTML(), W.HTML(), W.HTML()
        super().__init__([self.gpu_dropdown, self.hours_slider, self.mfu_slider, self.price_text, self.budget_label,
                          self.price_label, self.size_slider, self.context_dropdown, self.model_label,
                          self.local_label, self.laws_label, self.status])
        css_classes((self, "budget-panel"), (self.gpu_dropdown, "gpu"), (self.hours_slider, "hours"),
                    (self.mfu_slider, "mfu"), (self.price_text, "price"), (self.size_slider, "size"),
                    (self.context_dropdown, "context"), (self.budget_label, "budget"),
                    (self.price_label, "price-note"), (self.model_label, "model"), (self.local_label, "local"),
                    (self.laws_label, "laws"), (self.status, "status"))

        self._set_catalog_price()
        self.gpu_dropdown.observe(self._on_gpu, names="value")
        for w in (self.hours_slider, self.mfu_slider, self.price_text, self.size_slider, self.context_dropdown):
            w.observe(lambda _change: self.refresh(), names="value")
        self.refresh()

    def _size_options(self) -> list[tuple[str, int]]:
        """One stop per distinct preset shape over SIZE_RANGE: (label, total parameters), for any seq_len."""
        lo, hi = (math.log10(x) for x in SIZE_RANGE)
        stops = round((hi - lo) * SIZES_PER_DECADE) + 1
        totals = {count_params(preset(10 ** (lo + (hi - lo) * i / (stops - 1)), vocab_size=DEFAULT_VOCAB,
                                      seq_len=self.profile.seq_len)).total for i in range(stops)}
        return [(_human(n), n) for n in sorted(totals)]

    def _set_catalog_price(self) -> None:
        g = lookup_gpu(self.gpu_dropdown.value)
        self.price_text.placeholder = "no catalog price: type yours" if g.usd_per_hour is None else "catalog price"
        self.price_text.value = "" if g.usd_per_hour is None else f"{g.usd_per_hour:g}"

    def _on_gpu(self, _change=None) -> None:
        self._set_catalog_price()  # a typed price was for the previous GPU
        self.refresh()

    # ------------------------------------------------------------ read-outs (pure arithmetic: every change)
    def refresh(self) -> dict | None:
        """Recompute every read-out from the controls; returns the `budget_readout` dict, or None on a bad value."""
        try:
            r = budget_readout(self.gpu_dropdown.value, self.hours_slider.value, self.mfu_slider.value,
                               _parse_price(self.price_text.value), self.size_slider.value,
                               vocab_size=DEFAULT_VOCAB, seq_len=self.context_dropdown.value,
                               local_peak_flops=self.peak_flops, local_mfu=self.local_mfu)
        except Exception as error:  # shown in the panel: ipywidgets would send it to a log nobody reads
            self.show_error(error)
            if not isinstance(error, ValueError):
                raise  # a bug, not a bad setting: keep its traceback
            return None
        self.readout, self.last_error, self.status.value = r, None, ""
        self._show(r)
        return r

    def show_error(self, error: BaseException) -> None:
        """Blank the read-outs (they would be stale) and put the error's message in the status line."""
        self.readout, self.last_error = None, error
        for label in (self.budget_label, self.price_label, self.model_label, self.local_label, self.laws_label):
            label.value = ""
        self.status.value = _red(f"❌ {type(error).__name__}: {html.escape(str(error))}")

    def _show(self, r: dict) -> None:
        usd = "USD unknown" if r["usd"] is None else f"${r['usd']:,.2f}"
        self.budget_label.value = (f"<b>{r['flops']:.3g} FLOPs</b> = {r['hours']:.3g} h of {r['gpu']} at "
                                   f"{r['mfu']:.0%} MFU · <b>{usd}</b> · <b>{r['kwh']:,.3g} kWh</b> "
                                   f"<i>(board power {r['watts']:g} W only: no host, network or cooling)</i>")
        if r["usd_per_hour"] is None:
            self.price_label.value = _red(f"The catalog has no documented price for {r['gpu']}: "
                                          f"type what you pay per GPU-hour.")
        elif r["price_source"] == "your price":
            self.price_label.value = f"<i>at your price of ${r['usd_per_hour']:g} per GPU-hour</i>"
        else:
            dated = f", {r['price_date']}" if r["price_date"] else ", undated"
            self.price_label.value = (f"<i>at ${r['usd_per_hour']:g} per GPU-hour: on-demand price from "
                                      f"{html.escape(r['price_source'])}{dated} (a third-party copy; type yours)</i>")
        cfg = r["config"]
        self.model_label.value = (f"<b>{r['n_params']:,} parameters</b> (d_model {cfg.d_model}, {cfg.n_layer} "
                                  f"layers) · {r['flops_per_token']:,.0f} FLOPs per training token (Chinchilla "
                                  f"App. F accounting, {cfg.seq_len} tokens of context) → <b>{r['tokens']:.3g} "
                                  f"tokens</b> · <b>{r['tokens_per_param']:.3g} tokens per parameter</b>")
        self.local_label.value = (f"The same {r['flops']:.3g} FLOPs on this {self.device.type.upper()}: "
                                  f"≈ <b>{long_duration(r['local_seconds'])}</b> <i>(assuming training reaches "
                                  f"{r['local_mfu']:.0%} of its measured {self.precision} matmul peak of "
                                  f"{r['local_peak_flops'] / 1e9:,.0f} GFLOP/s)</i>")
        cells = (("n_opt", ".3g"), ("d_opt", ".3g"), ("tokens_per_param", ".3g"),
                 ("loss_opt", ".3f"), ("loss_model", ".3f"))
        rows = "".join(f"<tr><td>{name}</td>" + "".join(f"<td>{law[key]:{fmt}}</td>" for key, fmt in cells) + "</tr>"
                       for name, law in r["laws"].items())
        self.laws_label.value = (
            "<table><tr><th>law</th><th>N_opt (params)</th><th>D_opt (tokens)</th><th>tokens/param</th>"
            "<th>loss at optimum</th><th>loss of your model</th></tr>" + rows + "</table>"
            "<i>Compute-optimal split of this budget with C = 6ND. Losses are nats/token on MassiveText, the data "
            "these laws were fitted on, not on this kit's corpora.</i>")


def budget_panel(profile: Profile | str | None = None, **kwargs) -> BudgetPanel:
    """A budget dashboard (an ipywidgets VBox): GPU, GPU-hours, MFU, price and model size -> FLOPs, USD, kWh, tokens."""
    return BudgetPanel(profile, **kwargs)
