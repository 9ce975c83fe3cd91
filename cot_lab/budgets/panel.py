"""Notebook 01's dashboard: core ipywidgets over `budgets.readout.budget_readout`, recomputed on every move."""
from __future__ import annotations

import html
import math

import ipywidgets as W

from cot_lab.core.accounting import count_params
from cot_lab.core.shapes import preset
from cot_lab.budgets.gpus import GPUS, gpu as lookup_gpu
from cot_lab.core.device import ASSUMED_EFFICIENCY, autocast_dtype, measure_peak_flops, precision_name, resolve_device
from cot_lab.core.profiles import Profile, profile as get_profile
from cot_lab.budgets.readout import budget_readout, positive, within
from cot_lab.data import DEFAULT_VOCAB
from cot_lab.ui.format import human, long_duration, red
from cot_lab.ui.panel import Panel, css_classes

SIZE_RANGE = (1e4, 1e9)   # model-size slider, parameters; preset() shapes stop near 1.6e9
SIZES_PER_DECADE = 6
HOURS_RANGE = (1e-2, 1e6)  # GPU-hours slider: a quick test up to a large pre-training run
CONTEXTS = (128, 512, 2048, 8192)  # context-length choices, tokens; the profile's own is added
MFU_RANGE = (0.05, 0.8)    # MFU slider; nanoGPT's GPT-2 reached 0.37 on one A100 (transformer_sizing.ipynb)


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


class BudgetPanel(Panel):
    """Sliders for GPU, GPU-hours, MFU, price and model size, with read-outs in FLOPs, USD, kWh, tokens and time."""

    def __init__(self, profile: Profile | str | None = None, *, gpu: str = "H100-SXM", hours: float = 1.0,
                 mfu: float = 0.4, n_params: float = 1e8, device=None, peak_flops: float | None = None):
        self.profile = get_profile(profile)
        self.device = resolve_device(device)
        self.precision = precision_name(autocast_dtype(self.device))
        # Training reaches only a fraction of the matmul peak, less for tiny models (see widgets.ASSUMED_EFFICIENCY).
        self.local_mfu = ASSUMED_EFFICIENCY.get(self.device.type, 0.1)
        self.peak_flops = (measure_peak_flops(self.device) if peak_flops is None
                           else positive("peak_flops", peak_flops, "FLOP/s, or None to measure this machine"))
        n_params = positive("n_params", n_params, "model size in parameters, e.g. 1e8")
        self.readout: dict | None = None

        wide, style = W.Layout(width="560px"), {"description_width": "130px"}
        self.gpu_dropdown = W.Dropdown(options=list(GPUS), value=lookup_gpu(gpu).name, description="GPU", style=style)
        self.hours_slider = W.FloatLogSlider(value=within("hours", hours, HOURS_RANGE), base=10,
                                             min=math.log10(HOURS_RANGE[0]), max=math.log10(HOURS_RANGE[1]),
                                             step=0.05, description="GPU-hours", readout_format=".3g",
                                             layout=wide, style=style)
        self.mfu_slider = W.FloatSlider(value=within("mfu", mfu, MFU_RANGE), min=MFU_RANGE[0], max=MFU_RANGE[1],
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
                          self.local_label, self.laws_label, self.status, self.details])
        css_classes((self, "budget-panel"), (self.gpu_dropdown, "gpu"), (self.hours_slider, "hours"),
                    (self.mfu_slider, "mfu"), (self.price_text, "price"), (self.size_slider, "size"),
                    (self.context_dropdown, "context"), (self.budget_label, "budget"),
                    (self.price_label, "price-note"), (self.model_label, "model"), (self.local_label, "local"),
                    (self.laws_label, "laws"), (self.status, "status"))

        self._set_catalog_price()
        self.gpu_dropdown.observe(self.guard(self._on_gpu), names="value")
        for w in (self.hours_slider, self.mfu_slider, self.price_text, self.size_slider, self.context_dropdown):
            w.observe(lambda _change: self.refresh(), names="value")
        self.refresh()

    def _size_options(self) -> list[tuple[str, int]]:
        """One stop per distinct preset shape over SIZE_RANGE: (label, total parameters), for any seq_len."""
        lo, hi = (math.log10(x) for x in SIZE_RANGE)
        stops = round((hi - lo) * SIZES_PER_DECADE) + 1
        totals = {count_params(preset(10 ** (lo + (hi - lo) * i / (stops - 1)), vocab_size=DEFAULT_VOCAB,
                                      seq_len=self.profile.seq_len)).total for i in range(stops)}
        return [(human(n), n) for n in sorted(totals)]

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
        except Exception as error:
            self.show_error(error)
            return None
        self.readout = r
        self.clear_error()
        self._show(r)
        return r

    def on_error(self, error: BaseException) -> None:
        """Blank the read-outs: after a bad value they would be stale."""
        self.readout = None
        for label in (self.budget_label, self.price_label, self.model_label, self.local_label, self.laws_label):
            label.value = ""

    def _show(self, r: dict) -> None:
        usd = "USD unknown" if r["usd"] is None else f"${r['usd']:,.2f}"
        self.budget_label.value = (f"<b>{r['flops']:.3g} FLOPs</b> = {r['hours']:.3g} h of {r['gpu']} at "
                                   f"{r['mfu']:.0%} MFU · <b>{usd}</b> · <b>{r['kwh']:,.3g} kWh</b> "
                                   f"<i>(board power {r['watts']:g} W only: no host, network or cooling)</i>")
        if r["usd_per_hour"] is None:
            self.price_label.value = red(f"The catalog has no documented price for {r['gpu']}: "
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
