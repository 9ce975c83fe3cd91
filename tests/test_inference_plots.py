"""Notebook 04's figures pass the readability check and draw the numbers they claim: the real models at their
tokens per parameter, Chinchilla's 20, lifetime costs that add up, serving speed against its ceiling."""
import numpy as np
import pytest
from matplotlib.figure import Figure

import cot_lab as cl
from cot_lab.core.results import load_results
from cot_lab.inference import plots
from cot_lab.inference.serving import BatchServing, ServingReport
from cot_lab.ui.figure_check import assert_readable

# Chinchilla-optimal 7B model's loss under the published law: E + A (1 + alpha/beta) / N^alpha (H22 eq. 4)
LOSS_7B = 1.69 + 406.4 * (1 + 0.34 / 0.28) / 7e9 ** 0.34
LLAMA3_8B = 15e12 / 8e9        # 1,875 tokens/param: Meta 2024, arXiv 2407.21783
SMOLLM2 = 11e12 / 1.7e9        # ~6,470 tokens/param: Allal et al. 2025, arXiv 2502.02737


@pytest.fixture(scope="module")
def yours():
    return cl.ScalingLaw(**load_results("laptop")["holdout"]["fitted_law"]), cl.ladder_flops_per_token()


def markers(ax, marker="o"):
    return [line for line in ax.lines if line.get_marker() == marker]


def test_real_models_are_the_published_over_training():
    by_name = {m.name: m for m in plots.REAL_MODELS}
    assert by_name["Llama 3 8B"].tokens_per_param == pytest.approx(1875, rel=1e-12)
    assert by_name["SmolLM2-1.7B"].tokens_per_param == pytest.approx(6500, rel=0.01)
    assert all("arXiv" in m.source for m in plots.REAL_MODELS)


@pytest.mark.parametrize("law_name", ["chinchilla", "yours"])
def test_optimal_size_places_real_models_on_the_curve_and_chinchillas_20(law_name, yours):
    law, fpt = (cl.CHINCHILLA, None) if law_name == "chinchilla" else yours
    loss = LOSS_7B if law_name == "chinchilla" else law.E + 0.035
    fig = plots.optimal_size_vs_requests(law, loss=loss, flops_per_token=fpt)
    assert isinstance(fig, Figure)
    assert_readable(fig, must_show_y=[20, LLAMA3_8B, SMOLLM2])
    left, right = fig.axes
    points = sorted(float(line.get_ydata()[0]) for line in markers(right))
    assert points == pytest.approx([LLAMA3_8B, SMOLLM2], rel=1e-9)
    chinchilla = [line for line in right.lines if "20 tokens per parameter" in line.get_label()]
    assert len(chinchilla) == 1 and list(chinchilla[0].get_ydata()) == [20, 20]
    # each real model sits on the tokens-per-parameter curve, at the request count it is labelled with
    curve = next(line for line in right.lines if line.get_label() == "inference-aware model")
    r, tpp = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    for line in markers(right):
        x, y = float(line.get_xdata()[0]), float(line.get_ydata()[0])
        assert np.interp(np.log(x), np.log(r), np.log(tpp)) == pytest.approx(np.log(y), abs=0.05)
        assert f"~{x:.1e} requests" in line.get_label()
    ratio = left.lines[0].get_ydata()
    assert ratio[0] == pytest.approx(1.0, abs=0.02) and ratio[-1] < 0.5 and all(np.diff(ratio) <= 1e-9)


def test_real_models_the_curve_never_reaches_are_shown_as_levels():
    fig = plots.optimal_size_vs_requests(cl.CHINCHILLA, loss=LOSS_7B, requests=np.logspace(3, 6, 10))
    assert_readable(fig, must_show_y=[20, LLAMA3_8B, SMOLLM2])
    right = fig.axes[1]
    assert not markers(right)
    levels = sorted(float(line.get_ydata()[0]) for line in right.lines if "not reached" in line.get_label())
    assert levels == pytest.approx([LLAMA3_8B, SMOLLM2], rel=1e-9)


@pytest.mark.parametrize("unit", ["usd", "flops"])
def test_lifetime_cost_vs_requests(unit):
    requests = np.logspace(3, 12, 12)
    fig = plots.lifetime_cost_vs_requests(cl.CHINCHILLA, loss=LOSS_7B, requests=requests, unit=unit)
    assert_readable(fig)
    top, bottom = fig.axes
    chinchilla, aware = (np.asarray(line.get_ydata()) for line in top.lines)
    assert np.all(aware <= chinchilla * (1 + 1e-9)) and aware[0] == pytest.approx(chinchilla[0], rel=1e-3)
    assert aware[-1] < 0.5 * chinchilla[-1]
    share = np.asarray(bottom.lines[1].get_ydata())
    assert 0 <= share.min() and share.max() <= 100 and share[-1] > share[0]
    if unit == "flops":
        # the Chinchilla model for the loss: 7B parameters on D = B (1 + beta/alpha) / (loss - E) to the 1/beta
        n = 7e9
        d = (410.7 * (1 + 0.28 / 0.34) / (LOSS_7B - 1.69)) ** (1 / 0.28)
        assert chinchilla == pytest.approx(6 * n * d + 2 * n * requests * 285, rel=1e-6)
        assert top.get_ylabel() == "lifetime FLOPs (training + serving)"


def test_lifetime_cost_with_the_kit_law_and_a_price_for_an_unpriced_gpu(yours):
    law, fpt = yours
    fig = plots.lifetime_cost_vs_requests(law, loss=law.E + 0.035, flops_per_token=fpt, gpu="H200", usd_per_hour=4.5,
                                          requests=np.logspace(3, 12, 10))
    assert_readable(fig)
    assert "H200" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="usd_per_hour=None: the catalog has no price for H200"):
        plots.lifetime_cost_vs_requests(law, loss=law.E + 0.035, flops_per_token=fpt, gpu="H200")
    assert_readable(plots.lifetime_cost_vs_requests(law, loss=law.E + 0.035, flops_per_token=fpt, gpu="H200",
                                                    unit="flops", requests=np.logspace(3, 12, 5)))  # no price needed
    with pytest.raises(ValueError, match="unit="):
        plots.lifetime_cost_vs_requests(law, loss=law.E + 0.035, unit="kwh")
    with pytest.raises(ValueError, match=r"loss=.*at or below"):
        plots.optimal_size_vs_requests(law, loss=law.E)
    with pytest.raises(ValueError, match="requests"):
        plots.optimal_size_vs_requests(law, loss=law.E + 0.1, requests=[1e6])


def report(params: int, rows) -> ServingReport:
    """A ServingReport shaped like measure_serving's, from (batch, measured tokens/s, ceiling tokens/s) rows."""
    batches = tuple(BatchServing(batch_size=b, prefill_s=0.01, decode_s=b * 64 / m, prefill_tokens_per_s=b * 64 / 0.01,
                                 decode_tokens_per_s=m, ms_per_token=1e3 / (m / b), bytes_per_step=4.0 * params,
                                 ceiling_tokens_per_s=c, fraction_of_ceiling=m / c, decode_flops_per_s=2 * params * m,
                                 decoded_shape=(b, 64)) for b, m, c in rows)
    return ServingReport(batches=batches, prompt_tokens=64, new_tokens=64, repeats=3, device="cpu",
                         device_name="test CPU", dtype="float32", cache="dynamic", params=params,
                         weight_bytes=4 * params, kv_bytes_per_token=1024, kv_bytes_per_token_measured=1024.0,
                         mean_context_tokens=96.5, bandwidth_bytes_per_s=2e10, forward_flops_per_token=2.0 * params)


def test_serving_speed_labels_each_bar_with_the_share_of_its_ceiling():
    reports = {"15K": report(14_928, [(1, 400, 4000), (8, 2500, 1e4), (32, 6000, 2e4)]),
               "1.1M": report(1_084_776, [(1, 300, 1000), (8, 2000, 2500)])}  # no batch 32: a gap, not an error
    fig = plots.serving_speed(reports)
    assert_readable(fig)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    heights = sorted(p.get_height() for p in ax.patches)
    assert heights == sorted([400, 2500, 6000, 300, 2000])
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["10%", "25%", "30%", "30%", "80%"])
    ceiling = next(c for c in ax.collections if "ceiling" in c.get_label())
    assert sorted(seg[0][1] for seg in ceiling.get_segments()) == sorted([4000, 1e4, 2e4, 1000, 2500])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["batch 1", "batch 8", "batch 32"]
    with pytest.raises(ValueError, match="reports="):
        plots.serving_speed({})
    with pytest.raises(ValueError, match="reports="):
        plots.serving_speed({"x": 3})


def test_serving_speed_draws_a_real_measurement():
    cfg = cl.ModelConfig(d_model=32, n_layer=2, n_head=2, vocab_size=512, seq_len=64)
    measured = cl.measure_serving(cl.build_model(cfg, seed=0), batch_sizes=(1, 4), prompt_tokens=8, new_tokens=4,
                                  repeats=1, device="cpu", bandwidth_bytes_per_s=1e10)
    fig = plots.serving_speed({"tiny": measured})
    assert_readable(fig)
    assert len(fig.axes[0].patches) == 2 and len(fig.axes[0].texts) == 2
