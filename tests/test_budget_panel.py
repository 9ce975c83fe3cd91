"""Notebook 01's budget arithmetic, its panel driven without a browser, the accounting figure and its checkers."""
import math

import pytest
from matplotlib.figure import Figure

import cot_lab as cl
from cot_lab.budgets import checks as check
from cot_lab.budgets.plots import accounting_figure, accounting_ratios
from cot_lab.budgets.panel import budget_panel
from cot_lab.budgets.readout import budget_readout
from cot_lab.ui.format import long_duration
from cot_lab.ui.figure_check import assert_readable

H100_HOUR_AT_40 = 989.4e12 * 0.4 * 3600  # FLOPs: dense BF16 peak (glennklockwood.com) x MFU x seconds
PEAK = 1e11  # FLOP/s given to the panel so that tests never measure the machine


# ------------------------------------------------------------------ budget_readout: real values


def test_one_h100_hour_in_flops_usd_kwh():
    r = budget_readout("H100-SXM", hours=1, mfu=0.4, n_params=1e8)
    assert r["flops"] == pytest.approx(H100_HOUR_AT_40, rel=1e-12)
    assert r["usd"] == pytest.approx(3.78)  # Lambda on-demand, techbytes.app 2026-05-07
    assert r["kwh"] == pytest.approx(0.7)  # 700 W board power for one hour
    assert r["price_source"] == "Lambda via techbytes.app" and r["price_date"] == "2026-05-07"


def test_hours_mfu_and_own_price_scale_linearly():
    r = budget_readout("h100 pcie", hours=250, mfu=0.3, usd_per_hour=2.0, n_params=1e6)
    assert r["gpu"] == "H100-PCIe"
    assert r["flops"] == pytest.approx(756e12 * 0.3 * 3600 * 250, rel=1e-12)
    assert r["usd"] == pytest.approx(500.0)
    assert r["kwh"] == pytest.approx(250 * 350 / 1000)
    assert r["price_source"] == "your price" and r["price_date"] is None


def test_gpu_without_a_catalog_price():
    r = budget_readout("H200", hours=10, mfu=0.4)
    assert r["usd"] is None and r["usd_per_hour"] is None  # unknown, never $0
    assert r["flops"] == pytest.approx(989e12 * 0.4 * 36000, rel=1e-12)
    assert r["kwh"] == pytest.approx(7.0)
    assert budget_readout("H200", hours=10, mfu=0.4, usd_per_hour=4.5)["usd"] == pytest.approx(45.0)


@pytest.mark.parametrize("n_params,seq_len", [(1e4, 128), (1e6, 64), (1e8, 8192)])
def test_tokens_are_budget_over_flops_per_token(n_params, seq_len):
    r = budget_readout("A100-80GB", hours=3, mfu=0.5, n_params=n_params, seq_len=seq_len)
    cfg = cl.preset(n_params, seq_len=seq_len)
    assert r["config"] == cfg and r["n_params"] == cl.count_params(cfg).total
    assert r["flops_per_token"] == cl.flops_per_token(cfg, "chinchilla")
    assert r["tokens"] == pytest.approx(r["flops"] / cl.flops_per_token(cfg), rel=1e-9)
    assert r["tokens_per_param"] == pytest.approx(r["tokens"] / cl.count_params(cfg).total, rel=1e-9)


def test_time_on_this_machine_at_the_assumed_mfu():
    r = budget_readout("T4", hours=2, mfu=0.25, local_peak_flops=PEAK, local_mfu=0.05)
    assert r["local_seconds"] == pytest.approx(65e12 * 0.25 * 7200 / (PEAK * 0.05), rel=1e-12)
    assert budget_readout("T4", hours=2)["local_seconds"] is None


def _n_opt(C, E, A, B, alpha, beta):
    """N_opt = G (C/6)^(beta/(alpha+beta)), G = (alpha A / (beta B))^(1/(alpha+beta)) (H22 eq. 4), in parameters."""
    return (alpha * A / (beta * B)) ** (1 / (alpha + beta)) * (C / 6) ** (beta / (alpha + beta))


def test_what_the_laws_say_the_budget_buys():
    r = budget_readout("H100-SXM", hours=100, mfu=0.4, n_params=1e9)
    C = r["flops"]
    chinchilla, epoch = r["laws"]["Chinchilla"], r["laws"]["Epoch"]
    assert chinchilla["n_opt"] == pytest.approx(_n_opt(C, 1.69, 406.4, 410.7, 0.34, 0.28), rel=1e-9)
    assert epoch["n_opt"] == pytest.approx(_n_opt(C, 1.817, 482.01, 2085.43, 0.3478, 0.3658), rel=1e-9)
    for law in (chinchilla, epoch):
        assert 6 * law["n_opt"] * law["d_opt"] == pytest.approx(C, rel=1e-9)
        assert law["tokens_per_param"] == pytest.approx(law["d_opt"] / law["n_opt"], rel=1e-12)
    # Derived from the fits (not published): D/N ~40 with Hoffmann et al. 2022's App. D.2 law and ~23 with
    # Epoch's refit (Besiroglu et al. 2024) at 1e20 FLOPs, via H22 eq. 4 with C = 6ND; C here is 1.42e20.
    at_1e20 = budget_readout("H100-SXM", hours=1e20 / H100_HOUR_AT_40, mfu=0.4)["laws"]
    assert at_1e20["Chinchilla"]["tokens_per_param"] == pytest.approx(40, rel=0.05)
    assert at_1e20["Epoch"]["tokens_per_param"] == pytest.approx(23, rel=0.05)
    assert chinchilla["loss_opt"] == pytest.approx(1.69 + 406.4 / chinchilla["n_opt"] ** 0.34
                                                   + 410.7 / chinchilla["d_opt"] ** 0.28, rel=1e-12)
    assert chinchilla["loss_opt"] <= chinchilla["loss_model"]  # the optimum is the lowest loss at this budget
    assert epoch["loss_opt"] <= epoch["loss_model"]


@pytest.mark.parametrize("kwargs,name", [
    (dict(gpu="Z80"), "gpu"),
    (dict(hours=0), "hours"),
    (dict(hours=float("nan")), "hours"),
    (dict(mfu=1.5), "mfu"),
    (dict(usd_per_hour=-1.0), "usd_per_hour"),
    (dict(n_params=0), "n_params"),
    (dict(local_peak_flops=-1.0), "local_peak_flops"),
    (dict(local_peak_flops=1e11, local_mfu=2.0), "local_mfu"),
])
def test_bad_values_raise_value_error_naming_the_argument(kwargs, name):
    args = dict(gpu="H100-SXM", hours=1.0, mfu=0.4) | kwargs
    with pytest.raises(ValueError, match=rf"\b{name}="):
        budget_readout(**args)


def test_long_durations_read_in_days_and_years():
    assert long_duration(30) == "30 s"
    assert long_duration(3 * 86400) == "3 days"
    assert long_duration(10 * 365.25 * 86400) == "10 years"


# ------------------------------------------------------------------ the panel


@pytest.fixture()
def panel():
    return budget_panel(profile="smoke", peak_flops=PEAK, device="cpu")


def test_panel_starts_with_one_h100_hour(panel):
    assert panel.readout["flops"] == pytest.approx(H100_HOUR_AT_40, rel=1e-12)
    assert f"{H100_HOUR_AT_40:.3g} FLOPs" in panel.budget_label.value
    assert "$3.78" in panel.budget_label.value and "0.7 kWh" in panel.budget_label.value
    assert "techbytes.app, 2026-05-07" in panel.price_label.value
    assert panel.context_dropdown.value == cl.profile("smoke").seq_len
    assert "5% of its measured" in panel.local_label.value and "100 GFLOP/s" in panel.local_label.value
    assert long_duration(H100_HOUR_AT_40 / (PEAK * 0.05)) in panel.local_label.value
    assert "MassiveText" in panel.laws_label.value
    assert f"{panel.readout['laws']['Epoch']['n_opt']:.3g}" in panel.laws_label.value


def test_size_stops_are_distinct_real_models(panel):
    values = [v for _, v in panel.size_slider.options]
    assert values == sorted(values) and len(set(values)) == len(values) >= 20
    assert all(cl.count_params(cl.preset(v)).total == v for v in values[::5])


def test_slider_moves_update_the_readouts(panel):
    panel.hours_slider.value = 10.0
    assert f"{10 * H100_HOUR_AT_40:.3g} FLOPs" in panel.budget_label.value
    assert "$37.80" in panel.budget_label.value
    panel.mfu_slider.value = 0.2
    assert f"{5 * H100_HOUR_AT_40:.3g} FLOPs" in panel.budget_label.value
    before = panel.model_label.value
    panel.size_slider.value = panel.size_slider.options[0][1]
    r = panel.readout
    assert panel.model_label.value != before
    assert f"{r['n_params']:,} parameters" in panel.model_label.value
    assert f"{r['tokens']:.3g} tokens" in panel.model_label.value
    assert r["tokens"] == pytest.approx(r["flops"] / cl.flops_per_token(r["config"]), rel=1e-9)
    short = r["tokens"]
    panel.context_dropdown.value = 8192
    assert panel.readout["tokens"] < short / 2  # attention dominates a tiny model at a long context


def test_gpu_without_price_and_a_typed_price(panel):
    panel.gpu_dropdown.value = "H200"
    assert panel.price_text.value == ""
    assert "USD unknown" in panel.budget_label.value
    assert "no documented price for H200" in panel.price_label.value
    panel.price_text.value = "4"
    assert "$4.00" in panel.budget_label.value and "your price" in panel.price_label.value
    panel.gpu_dropdown.value = "A10"  # a typed price was for the previous GPU: back to the catalog's
    assert panel.price_text.value == "0.86" and "$0.86" in panel.budget_label.value


@pytest.mark.parametrize("typed", ["abc", "-2"])
def test_bad_price_is_shown_in_the_panel(panel, typed):
    panel.price_text.value = typed
    assert isinstance(panel.last_error, ValueError) and "usd_per_hour" in str(panel.last_error)
    assert "ValueError" in panel.status.value and "usd_per_hour" in panel.status.value
    assert panel.readout is None and panel.budget_label.value == ""  # no stale numbers beside an error
    panel.price_text.value = "3"
    assert panel.status.value == "" and "$3.00" in panel.budget_label.value


@pytest.mark.parametrize("kwargs,name", [(dict(hours=1e9), "hours"), (dict(mfu=0.95), "mfu"),
                                         (dict(gpu="Z80"), "gpu"), (dict(peak_flops=0), "peak_flops")])
def test_bad_panel_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name}="):
        budget_panel(profile="smoke", device="cpu", **({"peak_flops": PEAK} | kwargs))


# ------------------------------------------------------------------ the accounting figure


def test_accounting_ratios_are_per_token_flops_over_6n():
    r = accounting_ratios([1e4, 1e6, 1e9], seq_len=8192)
    for i, n in enumerate(r["n_params"]):
        cfg = cl.preset(n, seq_len=8192)
        six_n = 6 * cl.count_params(cfg).total
        assert r["6n"][i] == 1.0
        assert r["kaplan"][i] == pytest.approx(cl.flops_per_token(cfg, "kaplan") / six_n, rel=1e-12)
        assert r["chinchilla"][i] == pytest.approx(cl.flops_per_token(cfg, "chinchilla") / six_n, rel=1e-12)

        def per_context_token(method):  # training FLOPs per token added by each extra token of context
            return (cl.flops_per_token(cfg, method, seq_len=8192) - cl.flops_per_token(cfg, method, seq_len=128)) / 8064

        # Chinchilla's attention (12 L T d, QK and AV, plus the softmax) is twice Kaplan's (6 L T d, QK only).
        assert per_context_token("kaplan") == pytest.approx(6 * cfg.n_layer * cfg.d_model, rel=1e-12)
        assert per_context_token("chinchilla") == pytest.approx(
            12 * cfg.n_layer * cfg.d_model + 9 * cfg.n_layer * cfg.n_head, rel=1e-12)
        assert per_context_token("6n") == 0
    assert r["chinchilla"][0] > r["kaplan"][0] > 10  # a tiny model at a long context: 6N is far off
    assert 1.5 < r["chinchilla"][-1] < 2.0  # a 1B model: ~1 + T/(6d) with d = 1664


def test_accounting_at_short_context_small_models_differ_by_embeddings():
    r = accounting_ratios([1e4, 1e9], seq_len=128)
    assert r["kaplan"][0] < 0.6  # embeddings are ~half of N and Kaplan leaves them out
    assert r["chinchilla (paper convention)"][0] > r["chinchilla"][0] > 1  # the paper counts the lookup too
    assert all(v == pytest.approx(1.0, abs=0.02) for k in ("kaplan", "chinchilla") for v in r[k][1:])


def test_accounting_figure_has_a_panel_per_context():
    fig = accounting_figure([1e4, 1e6], seq_lens=(128, 8192))
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [len(line.get_xdata()) for line in fig.axes[1].lines] == [2, 2, 2, 2]
    assert_readable(fig)
    with pytest.raises(ValueError, match="seq_len="):
        accounting_ratios([1e4], seq_len=0)


# ------------------------------------------------------------------ checkers for notebook 01


def test_budget_checkers():
    assert check.budget_flops(100 * H100_HOUR_AT_40, "H100-SXM", hours=100, mfu=0.4)
    low = check.budget_flops(100 * H100_HOUR_AT_40 * 0.9, "H100-SXM", hours=100, mfu=0.4)
    assert not low and "too low" in low.message and f"{100 * H100_HOUR_AT_40:.3g}" not in low.message
    assert check.budget_flops(10 * 989e12 * 0.4 * 3600, "H200", hours=10, mfu=0.4)  # no catalog price needed
    flops = 6 * 7e9 * 140e9
    assert check.budget_hours(flops / H100_HOUR_AT_40, flops, "H100-SXM", mfu=0.4)
    assert not check.budget_hours(flops / H100_HOUR_AT_40 * 1.05, flops, "H100-SXM", mfu=0.4)
    assert "Fill in" in check.budget_hours(None, flops, "H100-SXM", mfu=0.4).message


def test_choice_checker():
    options = ("6n", "kaplan", "chinchilla")
    assert check.choice(" Chinchilla ", "chinchilla", options)
    wrong = check.choice("kaplan", "chinchilla", options, hint="count both products")
    assert not wrong and "chinchilla" not in wrong.message and "count both products" in wrong.message
    assert "not one of the options" in check.choice("gpt", "chinchilla", options).message
    assert "not one of the options" in check.choice(3, "chinchilla", options).message
    assert "Fill in" in check.choice(None, "chinchilla", options).message
    with pytest.raises(ValueError, match="expected="):
        check.choice("a", "z", ("a", "b"))


def test_flops_ratio_checker():
    cfg = cl.preset(1e6)
    attention_estimate = 1 + 12 * cfg.n_layer * 8192 * cfg.d_model / (6 * cl.count_params(cfg).total)
    assert check.flops_ratio(attention_estimate, cfg, seq_len=8192)  # the hand estimate is within 5%
    assert not check.flops_ratio(1.0, cfg, seq_len=8192)  # 6N alone is far off
    assert math.isclose(cl.flops_per_token(cfg, "chinchilla", seq_len=8192) / (6 * cl.count_params(cfg).total),
                        8.95, rel_tol=0.01)
