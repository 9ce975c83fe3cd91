"""The lifetime-optimal model in USD and kWh: Sardana et al. 2024's cost model on the kit's GPU catalog.

Sardana et al. 2024 (arXiv 2401.00448, section "Estimating Real-World Cost Optimality") price a FLOP as

    USD per FLOP = (USD per GPU-hour) / (3600 s x peak FLOP/s x MFU)

with MFU 0.5 for training and for prefill (the prompt, processed in parallel) and 0.01 for generation (one
token at a time, memory-bound), and a request of 70 prompt + 215 output tokens, the LMSYS-Chat-1M means
(Zheng et al. 2023, arXiv 2309.11998, Table 1: 69.5 and 214.5), as in their repo's cost_optimal.py defaults
(nikhilsardana/beyond-chinchilla). Prices and peaks here come from `cot_lab.budgets.gpus`, and FLOPs become
USD and kWh through `cot_lab.budgets.budget.Budget`.

Lifetime USD = p_train 6 N D + p_prefill 2 N T_in + p_decode 2 N T_out
             = p_train (6 N D + 2 N T_eff),   T_eff = (p_prefill T_in + p_decode T_out) / p_train,

so the cheapest model for a loss is the FLOP-optimal one for T_eff price-weighted inference tokens (the
same reweighting as `cost_optimal_train_tokens` in their cost_calculator.py), found by `lifetime_optimum`.
One difference from their script: the catalog holds dense BF16 peaks, while their default serves in FP8 at
twice the BF16 peak; to price FP8 or INT8 serving, halve `serving_usd_per_hour`.
"""
from __future__ import annotations

from dataclasses import dataclass

from cot_lab.budgets.budget import Budget
from cot_lab.budgets.gpus import gpu as lookup_gpu
from cot_lab.core import validate
from cot_lab.core.law import ScalingLaw
from cot_lab.inference.lifetime import lifetime_optimum

# Sardana et al. 2024 ("Estimating Real-World Cost Optimality") and their cost_optimal.py defaults: MFU for
# training, prefill and generation; prompt / output tokens of a mean LMSYS-Chat-1M request (Zheng et al. 2023,
# Table 1).
MFU_TRAIN, MFU_PREFILL, MFU_DECODE = 0.5, 0.5, 0.01
TOKENS_PER_REQUEST = (70, 215)


@dataclass(frozen=True)
class ModelCost:
    """One model trained to the loss and then serving every request: FLOPs, USD and kWh by phase."""
    n_params: float
    train_tokens: float
    train_flops: float
    prefill_flops: float
    decode_flops: float
    train_usd: float
    prefill_usd: float
    decode_usd: float
    train_kwh: float
    prefill_kwh: float
    decode_kwh: float

    @property
    def serve_usd(self) -> float:
        """USD spent serving (prefill + generation)."""
        return self.prefill_usd + self.decode_usd

    @property
    def serve_kwh(self) -> float:
        """kWh spent serving (prefill + generation)."""
        return self.prefill_kwh + self.decode_kwh

    @property
    def lifetime_usd(self) -> float:
        """USD for training plus serving."""
        return self.train_usd + self.serve_usd

    @property
    def lifetime_kwh(self) -> float:
        """kWh for training plus serving."""
        return self.train_kwh + self.serve_kwh

    @property
    def lifetime_flops(self) -> float:
        """FLOPs for training plus serving."""
        return self.train_flops + self.prefill_flops + self.decode_flops

    @property
    def serving_share(self) -> float:
        """Fraction of the lifetime USD spent serving (0 to 1)."""
        return self.serve_usd / self.lifetime_usd


@dataclass(frozen=True)
class LifetimeCost:
    """The USD-cheapest model for a loss (`optimum`) beside the Chinchilla-optimal one (`chinchilla`).

    Both reach `loss` nats/token and serve `requests` requests of `input_tokens` + `output_tokens` tokens
    each; kWh count board power x `pue`. `flop_convention` is "6N/2N" or "trainer", as in `lifetime_optimum`.
    """
    loss: float
    requests: float
    input_tokens: float      # prompt tokens per request
    output_tokens: float     # generated tokens per request
    gpu: str
    serving_gpu: str
    flop_convention: str
    optimum: ModelCost
    chinchilla: ModelCost

    @property
    def usd_ratio(self) -> float:
        """Lifetime USD of the cheapest model / lifetime USD of the Chinchilla model (<= 1)."""
        return self.optimum.lifetime_usd / self.chinchilla.lifetime_usd

    @property
    def usd_saved(self) -> float:
        """Lifetime USD saved by training the cheapest model instead of the Chinchilla one."""
        return self.chinchilla.lifetime_usd - self.optimum.lifetime_usd

    @property
    def kwh_ratio(self) -> float:
        """Lifetime kWh of the cheapest model / lifetime kWh of the Chinchilla model."""
        return self.optimum.lifetime_kwh / self.chinchilla.lifetime_kwh

    @property
    def n_ratio(self) -> float:
        """Parameters of the cheapest model / parameters of the Chinchilla model."""
        return self.optimum.n_params / self.chinchilla.n_params

    @property
    def tokens_ratio(self) -> float:
        """Training tokens of the cheapest model / training tokens of the Chinchilla model."""
        return self.optimum.train_tokens / self.chinchilla.train_tokens

    def __str__(self) -> str:
        o, c = self.optimum, self.chinchilla
        return (f"loss {self.loss:.4g}, {self.requests:.3g} requests of {self.input_tokens:g}+{self.output_tokens:g} "
                f"tokens on {self.serving_gpu}: {o.n_params:.4g} params on {o.train_tokens:.4g} tokens, "
                f"${o.lifetime_usd:,.0f} ({o.serving_share:.0%} serving), {o.lifetime_kwh:,.0f} kWh; Chinchilla "
                f"{c.n_params:.4g} on {c.train_tokens:.4g}, ${c.lifetime_usd:,.0f} (cost x{self.usd_ratio:.3f})")


@dataclass(frozen=True)
class _Rate:
    usd_per_flop: float
    kwh_per_flop: float


def _rate(gpu_arg: str, gpu_name, price_arg: str, usd_per_hour, mfu_arg: str, mfu, pue) -> _Rate:
    """USD and kWh per FLOP on `gpu_name` at `mfu`, through Budget (so the arithmetic lives in one place)."""
    try:
        g = lookup_gpu(gpu_name)
    except ValueError as e:
        raise ValueError(str(e).replace("gpu=", f"{gpu_arg}=", 1)) from None
    mfu = validate.number(mfu_arg, mfu, high=1.0, hint="a fraction of the dense peak (Sardana et al.: 0.5 to train "
                                                         "and prefill, 0.01 to generate)")
    if usd_per_hour is None and g.usd_per_hour is None:
        raise ValueError(f"{price_arg}=None: the catalog has no price for {g.name}; pass {price_arg}= "
                         "(USD per GPU-hour, e.g. 3.5)")
    if usd_per_hour is not None:
        usd_per_hour = validate.number(price_arg, usd_per_hour, hint="USD per GPU-hour, e.g. 2.5")
    one = Budget.from_flops(1.0, g.name, mfu, usd_per_hour, pue)  # prices are linear in FLOPs
    return _Rate(one.usd, one.kwh)


def tokens_pair(tokens_per_request) -> tuple[float, float]:
    """(prompt tokens, output tokens) per request from a pair of non-negative numbers, not both zero."""
    try:
        t_in, t_out = tokens_per_request
    except (TypeError, ValueError):
        t_in = t_out = None
    if not (validate.is_number(t_in) and validate.is_number(t_out) and t_in >= 0 and t_out >= 0
            and t_in + t_out > 0):
        raise ValueError(f"tokens_per_request={tokens_per_request!r} must be (prompt tokens, output tokens), "
                         "two non-negative numbers that are not both zero, e.g. (70, 215) (LMSYS-Chat-1M means)")
    return float(t_in), float(t_out)


def _model_cost(n, d, train_flops, t_in, t_out, train: _Rate, prefill: _Rate, decode: _Rate) -> ModelCost:
    serve_per_token = train_flops / d / 3  # a forward pass: 2N of 6N, or a third of the trainer's count
    f_pre, f_dec = serve_per_token * t_in, serve_per_token * t_out
    return ModelCost(n, d, train_flops, f_pre, f_dec,
                     train_flops * train.usd_per_flop, f_pre * prefill.usd_per_flop, f_dec * decode.usd_per_flop,
                     train_flops * train.kwh_per_flop, f_pre * prefill.kwh_per_flop, f_dec * decode.kwh_per_flop)


def lifetime_cost(law: ScalingLaw, *, loss: float, requests: float, tokens_per_request=TOKENS_PER_REQUEST,
                  gpu: str = "H100-SXM", mfu_train: float = MFU_TRAIN, mfu_prefill: float = MFU_PREFILL,
                  mfu_decode: float = MFU_DECODE, usd_per_hour: float | None = None,
                  serving_gpu: str | None = None, serving_usd_per_hour: float | None = None,
                  pue: float = 1.0, flops_per_token=None, objective: str = "usd") -> LifetimeCost:
    """The model with the lowest lifetime USD (training + serving `requests`) that reaches `loss` nats/token.

    objective "usd" (default) minimises lifetime USD; "flops" picks the model with the fewest lifetime FLOPs
    (`lifetime_optimum` over every prompt and output token alike) and prices that one the same way.

    Training runs on `gpu` at `mfu_train`; serving on `serving_gpu` (default: the same GPU and price) with
    prompts at `mfu_prefill` and generated tokens at `mfu_decode`. Prices are the catalog's USD per GPU-hour
    unless given; kWh are board power x `pue`. `flops_per_token` as in `lifetime_optimum` (None: 6N / 2N).
    """
    validate.one_of("objective", objective, ("usd", "flops"))
    requests = validate.number("requests", requests, low_open=False,
                               hint="lifetime requests served, e.g. 1e9 (0 for training only)")
    t_in, t_out = tokens_pair(tokens_per_request)
    train = _rate("gpu", gpu, "usd_per_hour", usd_per_hour, "mfu_train", mfu_train, pue)
    if serving_gpu is None:
        serving_gpu = gpu
        serving_usd_per_hour = usd_per_hour if serving_usd_per_hour is None else serving_usd_per_hour
    prefill = _rate("serving_gpu", serving_gpu, "serving_usd_per_hour", serving_usd_per_hour,
                    "mfu_prefill", mfu_prefill, pue)
    decode = _rate("serving_gpu", serving_gpu, "serving_usd_per_hour", serving_usd_per_hour,
                   "mfu_decode", mfu_decode, pue)
    # Cost = p_train x (training FLOPs + a third of them per price-weighted inference token): the FLOP problem.
    weighted = requests * (t_in * prefill.usd_per_flop + t_out * decode.usd_per_flop) / train.usd_per_flop
    served = weighted if objective == "usd" else requests * (t_in + t_out)
    best = lifetime_optimum(law, loss=loss, inference_tokens=served, flops_per_token=flops_per_token)
    total_in, total_out = requests * t_in, requests * t_out
    return LifetimeCost(
        best.loss, requests, t_in, t_out, lookup_gpu(gpu).name, lookup_gpu(serving_gpu).name, best.flop_convention,
        _model_cost(best.n_params, best.train_tokens, best.train_flops, total_in, total_out, train, prefill, decode),
        _model_cost(best.chinchilla_n_params, best.chinchilla_train_tokens, best.chinchilla_train_flops,
                    total_in, total_out, train, prefill, decode))
