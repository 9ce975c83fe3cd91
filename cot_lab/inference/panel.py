"""Notebook 04's lifetime panel: how many requests a model will serve changes which model to train.

Sliders for the expected requests, the prompt and output tokens of a request, the GPU and a target loss per law;
every change re-solves Sardana et al. 2024's lifetime problem (`readout.lifetime_choice`, milliseconds) for each
law and shows the inference-aware model beside the Chinchilla-optimal one: parameters, training tokens, tokens
per parameter, lifetime FLOPs, USD and kWh, and the share spent serving.

Prompt and output tokens get a slider each, not one total with a fixed split: in Sardana et al.'s cost model a
prompt token is processed in parallel (prefill at 50% MFU) and an output token one at a time (1% MFU), so an
output token costs 50x a prompt token and the split, not only the total, moves the USD-optimal model.
"""
from __future__ import annotations

import html
import math
from collections.abc import Mapping

import ipywidgets as W

from cot_lab.budgets.gpus import GPUS, gpu as lookup_gpu
from cot_lab.core import validate
from cot_lab.core.law import ScalingLaw
from cot_lab.inference.costs import TOKENS_PER_REQUEST
from cot_lab.inference.lifetime import check_flops_per_token, check_law, check_loss
from cot_lab.inference.readout import (OBJECTIVES, lifetime_choice, loss_range, readout_row, target_losses,
                                       tokens_pair)
from cot_lab.ui.format import human, scientific
from cot_lab.ui.panel import Panel, css_classes

REQUESTS_RANGE = (1e3, 1e12)   # lifetime requests: a demo to a popular chat service
TOKENS_RANGE = (1.0, 1e5)      # tokens per request, each of prompt and output: a word to a long document
LOG_STEP = 0.05                # log10 step of the log sliders: 20 stops per decade, 1e9 and 1e12 exactly
LOSS_STOPS_PER_DECADE = 15     # target-loss stops per decade of the Chinchilla-optimal model size
OBJECTIVE_LABELS = (("fewest lifetime FLOPs", "flops"), ("lowest lifetime USD", "usd"))
YOUR_LAW = "your law"
DEFAULT_GPU = "H100-SXM"


def priced_gpus(gpus=None) -> dict[str, float | None]:
    """{catalog name: your USD per GPU-hour, or None for the catalog's} of the GPUs the dropdown offers.

    None: every catalog GPU with a price. A list of names: those, each needing a catalog price. A mapping name ->
    USD per GPU-hour: those at your prices (None takes the catalog's, which must then exist).
    """
    if gpus is None:
        return {name: None for name, g in GPUS.items() if g.usd_per_hour is not None}
    if isinstance(gpus, str) or not hasattr(gpus, "__iter__"):
        raise ValueError(f"gpus={gpus!r} must be a list of catalog names, e.g. ['H100-SXM', 'A100-80GB'], or a "
                         "mapping name -> USD per GPU-hour, e.g. {'H200': 4.5}")
    items = gpus.items() if isinstance(gpus, Mapping) else ((name, None) for name in gpus)
    out = {}
    for name, price in items:
        g = lookup_gpu(name)
        if price is None and g.usd_per_hour is None:
            raise ValueError(f"gpus={gpus!r}: the catalog has no price for {g.name}, and a lifetime cost needs "
                             f"one; pass gpus={{'{g.name}': 4.5, ...}} with your USD per GPU-hour, or leave it out")
        out[g.name] = None if price is None else validate.number("gpus[]", price, hint="USD per GPU-hour, e.g. 4.5")
    if not out:
        raise ValueError(f"gpus={gpus!r} is empty; name at least one GPU, e.g. ['H100-SXM']")
    return out


def _within(name: str, value, bounds: tuple[float, float], unit: str) -> float:
    """`value` if the slider can show it (a slider would silently clip it); else a ValueError."""
    return validate.number(name, value, low=bounds[0], low_open=False, high=bounds[1], hint=f"{unit} the slider spans")


def _log_slider(description: str, value: float, bounds: tuple[float, float], fmt: str) -> W.FloatLogSlider:
    return W.FloatLogSlider(value=value, base=10, min=math.log10(bounds[0]), max=math.log10(bounds[1]),
                            step=LOG_STEP, description=description, readout_format=fmt,
                            layout=W.Layout(width="560px"), style={"description_width": "150px"})


def _amount(x: float) -> str:
    """A dollar or kWh amount for reading: '3,209', '7.11', '0.0123'."""
    return f"{x:,.0f}" if x >= 1000 else f"{x:.3g}"


def _usd(x: float) -> str:
    return f"${_amount(x)}"


def _share(x: float) -> str:
    """A share (0 to 1) as a percentage that reads 100% or 0% only when it is: '99.9997%', '23.2%', '0.0012%'."""
    if x in (0.0, 1.0):
        return f"{100 * x:.0f}%"
    if 0.001 <= x <= 0.999:
        return f"{100 * x:.1f}%"
    if x < 0.001:
        return f"{100 * x:.2g}%"
    decimals = min(8, 1 - math.floor(math.log10(100 * (1 - x))))  # two digits of what is not serving
    return f"{100 * x:.{decimals}f}%"


def _loss_label(loss: float, floor: float) -> str:
    # enough decimals to show three digits of loss - E: a kit law's targets sit 1e-4 above its E
    decimals = max(3, 2 - math.floor(math.log10(loss - floor)))
    return f"{loss:.{decimals}f}"


class LifetimePanel(Panel):
    """Requests, tokens per request, GPU and target-loss sliders -> the inference-aware model for each law.

    `law` is counted with `flops_per_token` (a function N -> training FLOPs per token, e.g.
    `cl.ladder_flops_per_token()` for a law fitted on the kit's runs; None: 6N); the other `laws` (name -> law,
    e.g. {"your law": law, "Chinchilla": cl.CHINCHILLA}) with 6N, as published laws were fitted. `loss`: the
    target loss of `law`, or a mapping name -> loss (nats/token); a missing one is the loss of a Chinchilla-optimal
    7B model (published laws) or 100K model (a law with `flops_per_token`). `gpus`: see `priced_gpus`; `gpu`:
    the one selected (None: H100-SXM if offered, else the first). `objective`: "flops" or "usd" (`lifetime_choice`).
    """

    def __init__(self, law: ScalingLaw, *, flops_per_token=None, loss=None, gpus=None, laws=None,
                 requests: float = 1e9, tokens_per_request=TOKENS_PER_REQUEST, gpu: str | None = None,
                 objective: str = "flops"):
        law = check_law(law)
        check_flops_per_token(flops_per_token, 1e5)
        laws = {YOUR_LAW: law} if laws is None else dict(laws)
        if not laws or not all(isinstance(k, str) for k in laws):
            raise ValueError(f"laws={laws!r} must map names to laws, e.g. {{'your law': law, 'Chinchilla': cl.CHINCHILLA}}")
        if not any(v == law for v in laws.values()):
            laws = {YOUR_LAW: law, **laws}
        # (law, its FLOP count) by name: the FLOP count belongs to `law`, wherever it appears
        self.laws = {name: (check_law(v), flops_per_token if v == law else None) for name, v in laws.items()}
        self._primary = next(name for name, (v, _) in self.laws.items() if v == law)
        self.prices = priced_gpus(gpus)
        validate.one_of("objective", objective, OBJECTIVES)
        self._readout: dict | None = None
        self.costs: dict = {}
        self._setting = False

        style = {"description_width": "150px"}
        self.requests_slider = _log_slider("expected requests", _within("requests", requests, REQUESTS_RANGE,
                                                                        "requests"), REQUESTS_RANGE, ".3g")
        t_in, t_out = tokens_pair(tokens_per_request)
        self.prompt_slider = _log_slider("prompt tokens / request", _within("tokens_per_request[0]", t_in,
                                                                            TOKENS_RANGE, "tokens"), TOKENS_RANGE, ",.0f")
        self.output_slider = _log_slider("output tokens / request", _within("tokens_per_request[1]", t_out,
                                                                            TOKENS_RANGE, "tokens"), TOKENS_RANGE, ",.0f")
        if gpu is None:  # the kit's reference GPU where it is offered
            gpu = DEFAULT_GPU if DEFAULT_GPU in self.prices else next(iter(self.prices))
        self.gpu_dropdown = W.Dropdown(options=list(self.prices), value=self._gpu_name(gpu), description="GPU",
                                       style=style)
        self.objective_buttons = W.ToggleButtons(options=list(OBJECTIVE_LABELS), value=objective,
                                                 description="minimise", style=style)
        self.loss_sliders = {name: self._loss_slider(name, self._target(name, loss)) for name in self.laws}
        self.table, self.note = W.HTML(), W.HTML(self._note())
        self.status = W.HTML()
        super().__init__([self.requests_slider, self.prompt_slider, self.output_slider, self.gpu_dropdown,
                          *self.loss_sliders.values(), self.objective_buttons, self.table, self.note, self.status,
                          self.details])
        css_classes((self, "lifetime-panel"), (self.requests_slider, "requests"), (self.prompt_slider, "prompt-tokens"),
                    (self.output_slider, "output-tokens"), (self.gpu_dropdown, "gpu"),
                    (self.objective_buttons, "objective"), (self.table, "readout"), (self.note, "lifetime-note"),
                    (self.status, "status"), *((s, "loss") for s in self.loss_sliders.values()))
        for w in (self.requests_slider, self.prompt_slider, self.output_slider, self.gpu_dropdown,
                  self.objective_buttons, *self.loss_sliders.values()):
            w.observe(self._on_change, names="value")
        self.refresh()

    # ------------------------------------------------------------ controls
    def _gpu_name(self, gpu: str) -> str:
        name = lookup_gpu(gpu).name
        if name not in self.prices:
            raise ValueError(f"gpu={gpu!r} is not offered here; use one of {', '.join(self.prices)} (a GPU without "
                             "a catalog price needs gpus={name: USD per GPU-hour})")
        return name

    def _target(self, name: str, loss) -> float:
        """The target loss (nats/token) of law `name` from the `loss` argument, or its default."""
        if isinstance(loss, Mapping):
            unknown = set(loss) - set(self.laws)
            if unknown:
                raise ValueError(f"loss={dict(loss)!r} names {sorted(unknown)}, not a law here; use {list(self.laws)}")
            value = loss.get(name)
        else:
            value = loss if name == self._primary else None
        law, fpt = self.laws[name]
        if value is None:
            return loss_range(law, fpt is not None)[1]
        return check_loss(law, value)

    def _loss_slider(self, name: str, loss: float) -> W.SelectionSlider:
        slider = W.SelectionSlider(options=[(_loss_label(loss, self.laws[name][0].E), loss)],
                                   description=f"target loss, {name}", continuous_update=True,
                                   layout=W.Layout(width="560px"), style={"description_width": "150px"})
        self._loss_options(name, slider, loss)
        return slider

    def _loss_options(self, name: str, slider: W.SelectionSlider, loss: float) -> None:
        """The law's target-loss stops, with `loss` among them, and `loss` selected."""
        law, fpt = self.laws[name]
        values = sorted({*target_losses(law, fpt is not None, LOSS_STOPS_PER_DECADE), loss})
        slider.options = [(_loss_label(v, law.E), v) for v in values]
        slider.value = loss

    def _on_change(self, _change) -> None:
        if not self._setting:  # set() moves several controls, then solves once
            self.refresh()

    def set(self, *, requests=None, tokens_per_request=None, gpu=None, loss=None, objective=None) -> dict:
        """Move the controls (`loss`: of `law`, or name -> loss) and return the new `readout()`; ValueError on a bad value."""
        if requests is not None:
            requests = _within("requests", requests, REQUESTS_RANGE, "requests")
        if tokens_per_request is not None:
            t_in, t_out = tokens_pair(tokens_per_request)
            _within("tokens_per_request[0]", t_in, TOKENS_RANGE, "tokens")
            _within("tokens_per_request[1]", t_out, TOKENS_RANGE, "tokens")
        gpu = None if gpu is None else self._gpu_name(gpu)
        if objective is not None:
            validate.one_of("objective", objective, OBJECTIVES)
        names = list(loss) if isinstance(loss, Mapping) else [self._primary] if loss is not None else []
        targets = {name: self._target(name, loss) for name in names}  # every check before anything moves
        self._setting = True
        try:
            if requests is not None:
                self.requests_slider.value = requests
            if tokens_per_request is not None:
                self.prompt_slider.value, self.output_slider.value = t_in, t_out
            if gpu is not None:
                self.gpu_dropdown.value = gpu
            if objective is not None:
                self.objective_buttons.value = objective
            for name, value in targets.items():
                self._loss_options(name, self.loss_sliders[name], value)
        finally:
            self._setting = False
        if self.refresh() is None:
            raise self.last_error
        return self.readout()

    # ------------------------------------------------------------ read-outs
    def readout(self) -> dict | None:
        """{law name: `readout.readout_row` dict} of the current settings; None after an error."""
        return None if self._readout is None else {name: dict(row) for name, row in self._readout.items()}

    def frame(self):
        """`readout()` as a pandas DataFrame, one row per law."""
        import pandas as pd

        return pd.DataFrame.from_dict(self.readout() or {}, orient="index")

    def refresh(self) -> dict | None:
        """Solve for every law at the current settings and redraw the table; None (and the error shown) on failure."""
        try:
            gpu, objective = self.gpu_dropdown.value, self.objective_buttons.value
            tokens = (self.prompt_slider.value, self.output_slider.value)
            costs = {name: lifetime_choice(law, loss=self.loss_sliders[name].value,
                                           requests=self.requests_slider.value, tokens_per_request=tokens, gpu=gpu,
                                           usd_per_hour=self.prices[gpu], objective=objective, flops_per_token=fpt)
                     for name, (law, fpt) in self.laws.items()}
        except Exception as error:
            self.show_error(error)
            return None
        self.costs = costs
        self._readout = {name: readout_row(c, objective) for name, c in costs.items()}
        self.clear_error()
        self.table.value = self._table(self._readout)
        return self.readout()

    def on_error(self, error: BaseException) -> None:
        """Blank the table: after an error its numbers would be stale."""
        self._readout, self.costs = None, {}
        self.table.value = ""

    def _table(self, rows: dict) -> str:
        """The read-out table: per law, the inference-aware model beside the Chinchilla-optimal one, then a summary."""
        lines = [("target loss (nats/token)", "loss", None), ("parameters N", "n_params", human),
                 ("training tokens D", "train_tokens", scientific), ("tokens per parameter", "tokens_per_param", _amount),
                 ("lifetime FLOPs", "lifetime_flops", scientific), ("lifetime USD", "lifetime_usd", _usd),
                 ("lifetime kWh", "lifetime_kwh", _amount), ("share spent serving (USD)", "serving_share", _share),
                 ("share spent serving (FLOPs)", "serving_flops_share", _share)]
        # classes on the inference-aware cells, for the browser test to read (the Chinchilla ones do not move with N)
        classes = {"n_params": "n-params", "train_tokens": "train-tokens", "tokens_per_param": "tokens-per-param",
                   "lifetime_usd": "usd", "lifetime_kwh": "kwh", "serving_share": "serving-share"}
        head = "".join(f'<th colspan="2">{html.escape(name)} <i>(FLOPs: '
                       f'{"as the trainer counts" if r["flop_convention"] == "trainer" else "6N / 2N"})</i></th>'
                       for name, r in rows.items())
        body = ""
        for label, key, fmt in lines:
            cells = ""
            for name, r in rows.items():
                write = fmt or (lambda x, floor=self.laws[name][0].E: _loss_label(x, floor))
                cls = f' class="cot-lab-{classes[key]}" data-law="{html.escape(name)}"' if key in classes else ""
                theirs = r[key if key == "loss" else f"chinchilla_{key}"]
                cells += f"<td{cls}>{write(r[key])}</td><td>{write(theirs)}</td>"
            body += f"<tr><td>{label}</td>{cells}</tr>"
        r0 = next(iter(rows.values()))
        what = "fewest lifetime FLOPs" if r0["objective"] == "flops" else "lowest lifetime USD"
        summary = "<br>".join(
            f"<b>{html.escape(name)}</b>: train <b>N ×{r['n_ratio']:.3f}</b> the Chinchilla-optimal size on "
            f"<b>D ×{_amount(r['tokens_ratio'])}</b> its tokens: lifetime USD <b>×{r['usd_ratio']:.3f}</b>, "
            f"FLOPs ×{r['flops_ratio']:.3f}" for name, r in rows.items())
        return (f'<table class="cot-lab-lifetime"><tr><th></th>{head}</tr><tr><th></th>'
                f'{"<th>inference-aware</th><th>Chinchilla-optimal</th>" * len(rows)}</tr>{body}</table>'
                f"<div>{r0['requests']:.3g} requests of {r0['input_tokens']:,.0f} prompt + {r0['output_tokens']:,.0f} "
                f"output tokens on {html.escape(r0['gpu'])}:<br>{summary}</div>"
                f"<i>inference-aware: the model with the {what} that reaches the target loss; Chinchilla-optimal: "
                f"the one with the fewest training FLOPs, serving the same requests.</i>")

    @staticmethod
    def _note() -> str:
        return ("<i>Sardana et al. 2024 (arXiv 2401.00448): lifetime FLOPs = 6 N D_train + 2 N D_inference; their "
                "cost model runs training and prompts at 50% MFU and generation at 1% MFU (one token at a time), on "
                "the catalog's dated on-demand price per GPU-hour; kWh are board power only. Losses of different "
                "laws are on different data and are not comparable with each other.</i>")


def lifetime_panel(law: ScalingLaw, **kwargs) -> LifetimePanel:
    """A lifetime-cost dashboard (an ipywidgets VBox); see `LifetimePanel`."""
    return LifetimePanel(law, **kwargs)
