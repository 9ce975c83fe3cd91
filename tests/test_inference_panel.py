"""Notebook 04's lifetime panel, driven without a browser: read-outs react, N falls with requests, USD and kWh
match a hand pricing and `lifetime_cost`, bad losses and unpriced GPUs are handled.

Hand numbers: H100-SXM dense BF16 peak 989.4 TFLOP/s (glennklockwood.com), $3.78 per GPU-hour (Lambda via
techbytes.app, 2026-05-07), 700 W board power; Sardana et al. 2024 (arXiv 2401.00448) price training and prefill
at 50% MFU, generation at 1%.
"""
import math
import time

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.core.results import load_results
from cot_lab.inference.panel import LifetimePanel, lifetime_panel, priced_gpus

# Chinchilla's Approach-3 fit with its exponents unrounded, as in Sardana et al.'s code (utils.py).
SARDANA = cl.ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.336, beta=0.283)
H100_FLOPS, H100_USD, H100_KW = 989.4e12, 3.78, 0.7


def chinchilla_loss(law, n):
    """Loss of the compute-optimal n-parameter model: A/N^alpha is beta/(alpha+beta) of loss - E (H22 eq. 4)."""
    return law.E + law.A * (1 + law.alpha / law.beta) / n ** law.alpha


def brute_force_n(law, loss, inference_tokens):
    """N minimising 6 N D(N) + 2 N T along the iso-loss curve, on a fine grid in log N (no solver)."""
    n_min = (law.A / (loss - law.E)) ** (1 / law.alpha)  # smaller models cannot reach the loss at all
    n = n_min * np.exp(np.geomspace(1e-6, 40, 200_001))
    d = (law.B / (loss - law.E - law.A / n ** law.alpha)) ** (1 / law.beta)
    return float(n[np.argmin(6 * n * d + 2 * n * inference_tokens)])


def hand_usd_kwh(train_flops, prefill_flops, decode_flops, usd_per_hour=H100_USD):
    hours = (train_flops / 0.5 + prefill_flops / 0.5 + decode_flops / 0.01) / (H100_FLOPS * 3600)
    return hours * usd_per_hour, hours * H100_KW


@pytest.fixture(scope="module")
def yours():
    return cl.ScalingLaw(**load_results("laptop")["holdout"]["fitted_law"]), cl.ladder_flops_per_token()


@pytest.fixture()
def panel(yours):
    law, fpt = yours
    p = LifetimePanel(law, flops_per_token=fpt, laws={"your law": law, "Chinchilla": cl.CHINCHILLA})
    start = time.perf_counter()
    p.set(requests=3e9)
    # informal, never asserted: one slider update solves both laws (the kit's law numerically, with its FLOP count)
    print(f"one lifetime panel update: {1e3 * (time.perf_counter() - start):.1f} ms")
    return p


def test_the_panel_shows_both_laws_with_stable_classes(panel):
    r = panel.readout()
    assert list(r) == ["your law", "Chinchilla"]
    assert r["your law"]["flop_convention"] == "trainer" and r["Chinchilla"]["flop_convention"] == "6N/2N"
    assert "cot-lab-lifetime-panel" in panel._dom_classes
    assert "cot-lab-requests" in panel.requests_slider._dom_classes
    assert "cot-lab-readout" in panel.table._dom_classes
    assert all("cot-lab-loss" in s._dom_classes for s in panel.loss_sliders.values())
    assert 'class="cot-lab-n-params" data-law="Chinchilla"' in panel.table.value
    assert panel.frame().loc["Chinchilla", "n_params"] == r["Chinchilla"]["n_params"]
    # default target of a published law: the loss of a Chinchilla-optimal 7B model; of the kit's law: 100K
    assert r["Chinchilla"]["loss"] == pytest.approx(chinchilla_loss(cl.CHINCHILLA, 7e9), rel=1e-12)
    assert r["your law"]["chinchilla_n_params"] == pytest.approx(1e5, rel=0.1)  # 6N closed form vs trainer's count


def test_set_and_slider_moves_update_the_readouts(panel):
    before = panel.readout()
    after = panel.set(requests=1e12)
    for name in before:
        assert after[name]["n_params"] < before[name]["n_params"]
        assert after[name]["chinchilla_n_params"] == pytest.approx(before[name]["chinchilla_n_params"], rel=1e-6)
    shown = panel.table.value
    panel.requests_slider.value = 1e3  # a widget move, not set(): the read-outs follow at once
    assert panel.readout()["Chinchilla"]["requests"] == 1e3 and panel.table.value != shown
    panel.prompt_slider.value = 1000.0
    assert panel.readout()["your law"]["input_tokens"] == 1000.0
    panel.set(tokens_per_request=(70, 215), objective="usd")
    assert panel.objective_buttons.value == "usd" and panel.readout()["Chinchilla"]["objective"] == "usd"


def test_n_falls_and_tokens_per_parameter_rise_as_requests_grow(panel):
    rows = [panel.set(requests=r) for r in np.logspace(3, 12, 10)]
    for name in ("your law", "Chinchilla"):
        n = [row[name]["n_params"] for row in rows]
        tpp = [row[name]["tokens_per_param"] for row in rows]
        assert all(b <= a * (1 + 1e-6) for a, b in zip(n, n[1:])), n
        assert all(b >= a * (1 - 1e-6) for a, b in zip(tpp, tpp[1:])), tpp
        assert n[-1] < 0.5 * n[0]
        assert rows[-1][name]["serving_flops_share"] > rows[0][name]["serving_flops_share"]


def test_the_chinchilla_7b_example_against_a_brute_force_search():
    loss = chinchilla_loss(SARDANA, 7e9)
    p = LifetimePanel(SARDANA, laws={"Sardana": SARDANA}, loss=loss, requests=1e9)
    row = p.readout()["Sardana"]
    assert row["chinchilla_n_params"] == pytest.approx(7e9, rel=1e-9)
    # Sardana et al.'s condition at 285-token requests gives N x0.72 at 1e9 requests, N x0.24 at 1e11
    assert row["n_params"] == pytest.approx(brute_force_n(SARDANA, loss, 1e9 * 285), rel=1e-3)
    assert row["n_ratio"] == pytest.approx(0.72, abs=0.005)
    assert p.set(requests=1e11)["Sardana"]["n_ratio"] == pytest.approx(0.235, abs=0.005)


def test_usd_and_kwh_are_positive_and_match_a_hand_pricing_and_lifetime_cost(yours):
    law, fpt = yours
    p = LifetimePanel(law, flops_per_token=fpt, laws={"your law": law, "Chinchilla": cl.CHINCHILLA}, requests=1e9)
    for name, row in p.readout().items():
        cost = p.costs[name]
        for model, prefix in ((cost.optimum, ""), (cost.chinchilla, "chinchilla_")):
            assert model.prefill_flops / model.decode_flops == pytest.approx(70 / 215, rel=1e-12)
            usd, kwh = hand_usd_kwh(model.train_flops, model.prefill_flops, model.decode_flops)
            assert row[f"{prefix}lifetime_usd"] == pytest.approx(usd, rel=1e-9) and usd > 0
            assert row[f"{prefix}lifetime_kwh"] == pytest.approx(kwh, rel=1e-9) and kwh > 0
    # minimising USD: the numbers are lifetime_cost's own
    rows = p.set(objective="usd")
    for name, (law_, fpt_) in p.laws.items():
        ref = cl.lifetime_cost(law_, loss=rows[name]["loss"], requests=1e9, flops_per_token=fpt_)
        assert rows[name]["n_params"] == pytest.approx(ref.optimum.n_params, rel=1e-9)
        assert rows[name]["lifetime_usd"] == pytest.approx(ref.optimum.lifetime_usd, rel=1e-9)
        assert rows[name]["lifetime_kwh"] == pytest.approx(ref.optimum.lifetime_kwh, rel=1e-9)
        assert rows[name]["serving_share"] == pytest.approx(ref.optimum.serving_share, rel=1e-9)
        assert rows[name]["chinchilla_lifetime_usd"] == pytest.approx(ref.chinchilla.lifetime_usd, rel=1e-9)


def test_minimising_usd_trains_a_smaller_model_than_minimising_flops():
    # a generated token costs 50x a prompt token in USD (1% vs 50% MFU), so serving weighs more in USD
    p = LifetimePanel(cl.CHINCHILLA, requests=1e9)
    flops = p.readout()["your law"]
    usd = p.set(objective="usd")["your law"]
    assert usd["n_params"] < flops["n_params"]
    assert usd["lifetime_usd"] <= flops["lifetime_usd"] and usd["lifetime_flops"] >= flops["lifetime_flops"]


def test_a_loss_at_or_below_e_is_rejected_with_a_clear_error(yours):
    law, fpt = yours
    for bad in (law.E, law.E - 0.1):
        with pytest.raises(ValueError, match=r"loss=.*at or below the law's E="):
            LifetimePanel(law, flops_per_token=fpt, loss=bad)
    p = LifetimePanel(law, flops_per_token=fpt, laws={"your law": law, "Chinchilla": cl.CHINCHILLA})
    before = p.readout()
    with pytest.raises(ValueError, match=r"loss=1\.69 is at or below the law's E=1\.69"):
        p.set(loss={"Chinchilla": 1.69})
    with pytest.raises(ValueError, match=r"names \['Kaplan'\]"):
        p.set(loss={"Kaplan": 2.0})
    assert p.readout() == before  # nothing moved
    target = law.E + 0.0123
    row = p.set(loss=target)["your law"]  # a float is `law`'s target; it becomes a stop of its slider
    assert row["loss"] == target and target in [v for _, v in p.loss_sliders["your law"].options]
    assert cl.ScalingLaw.loss(law, row["n_params"], row["train_tokens"]) == pytest.approx(target, rel=1e-9)


def test_loss_sliders_stay_above_each_laws_e(panel):
    for name, slider in panel.loss_sliders.items():
        law = panel.laws[name][0]
        values = [v for _, v in slider.options]
        assert values == sorted(values) and values[0] > law.E and len(values) > 40
        assert len({label for label, _ in slider.options}) == len(values)  # every stop reads differently


def test_gpus_without_a_price_are_left_out_or_need_yours(yours):
    law, fpt = yours
    offered = list(priced_gpus())
    assert "H200" not in offered and "H100-SXM" in offered
    assert all(cl.gpu(name).usd_per_hour is not None for name in offered)
    with pytest.raises(ValueError, match=r"no price for H200.*\{'H200': 4\.5"):
        LifetimePanel(law, flops_per_token=fpt, gpus=["H100-SXM", "h200"])
    p = LifetimePanel(law, flops_per_token=fpt, gpus={"H200": 4.5, "H100-SXM": None})
    assert p.gpu_dropdown.options == ("H200", "H100-SXM") and p.gpu_dropdown.value == "H100-SXM"
    assert LifetimePanel(law, flops_per_token=fpt, gpus={"H200": 4.5}).gpu_dropdown.value == "H200"
    with pytest.raises(ValueError, match=r"gpu='T4' is not offered here"):
        p.set(gpu="T4")
    row = p.set(gpu="H200")["your law"]
    m = p.costs["your law"].optimum
    hours = (m.train_flops / 0.5 + m.prefill_flops / 0.5 + m.decode_flops / 0.01) / (989e12 * 3600)
    assert row["gpu"] == "H200" and row["lifetime_usd"] == pytest.approx(4.5 * hours, rel=1e-9)
    assert row["lifetime_kwh"] == pytest.approx(0.7 * hours, rel=1e-9)  # 700 W board power


@pytest.mark.parametrize("kwargs,match", [
    (dict(requests=1e13), r"requests=10000000000000\.0 must be .* requests the slider spans"), (dict(requests=0), "requests=0"),
    (dict(tokens_per_request=(0, 0)), "tokens_per_request="), (dict(tokens_per_request=(70, 1e6)), r"tokens_per_request\[1\]="),
    (dict(objective="speed"), "objective='speed'"), (dict(gpu="Z80"), "gpu='Z80'"),
])
def test_bad_settings_name_the_argument(panel, kwargs, match):
    with pytest.raises(ValueError, match=match):
        panel.set(**kwargs)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="law="):
        lifetime_panel("chinchilla")
    with pytest.raises(ValueError, match="flops_per_token="):
        lifetime_panel(cl.CHINCHILLA, flops_per_token=6)
    with pytest.raises(ValueError, match="gpus="):
        lifetime_panel(cl.CHINCHILLA, gpus=[])


def test_an_error_while_solving_is_shown_and_blanks_the_table(panel, monkeypatch):
    import cot_lab.inference.panel as module

    def broken(*args, **kwargs):
        raise ValueError("loss=9 is unreachable here")

    monkeypatch.setattr(module, "lifetime_choice", broken)
    panel.requests_slider.value = 1e6
    assert "ValueError" in panel.status.value and "unreachable" in panel.status.value
    assert panel.readout() is None and panel.table.value == ""
    monkeypatch.undo()
    panel.requests_slider.value = 1e7
    assert panel.status.value == "" and math.isclose(panel.readout()["Chinchilla"]["requests"], 1e7)
