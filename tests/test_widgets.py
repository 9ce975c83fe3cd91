"""The training panel driven without a browser, the live plot, the figures, and the profiles."""
import math

import pytest
from matplotlib.figure import Figure

import cot_lab as cl
from cot_lab import plots, profiles, widgets
from cot_lab.callbacks import TrainState
from cot_lab.live import LiveLossPlot

SMOKE = profiles.profile("smoke")
PEAK = 1e11  # FLOP/s given to the panel so that read-out tests do not measure the machine


@pytest.fixture()
def store(tmp_path):
    return cl.RunStore(tmp_path / "runs")


@pytest.fixture()
def panel(synthetic, store):
    return widgets.train_panel(synthetic, store=store, profile=SMOKE, peak_flops=PEAK, device="cpu")


def pngs(output):
    return [o for o in output.outputs if o.get("output_type") == "display_data" and "image/png" in o["data"]]


# ------------------------------------------------------------------ read-outs


def test_size_slider_stops_are_distinct_real_models(panel, synthetic):
    values = [v for _, v in panel.size_slider.options]
    assert values == sorted(values) and len(set(values)) == len(values) >= 5
    for value in values:
        cfg = panel._configs[value]
        assert cl.count_params(cfg).total == value
        assert cfg.vocab_size == synthetic.vocab_size and cfg.seq_len == SMOKE.seq_len
    assert SMOKE.params_min / 2 <= values[0] and values[-1] <= SMOKE.params_max * 2
    default = panel.size_slider.value
    assert abs(math.log(default / SMOKE.params)) < math.log(1.5)


def test_slow_work_waits_for_release(panel):
    assert panel.size_slider.continuous_update is False
    assert panel.budget_slider.continuous_update is False


def test_moving_the_size_slider_updates_the_readouts(panel):
    before = panel.params_label.value, panel.budget_label.value
    new = panel.size_slider.options[-1][1]
    panel.size_slider.value = new
    cfg = panel.config
    assert cl.count_params(cfg).total == new
    assert f"{new:,} parameters" in panel.params_label.value
    assert (panel.params_label.value, panel.budget_label.value) != before
    tokens = panel.flops / cl.flops_per_token(cfg)
    steps = int(tokens // (SMOKE.batch_size * SMOKE.seq_len))
    assert f"{tokens:,.0f} training tokens" in panel.budget_label.value
    assert f"{steps:,} steps" in panel.budget_label.value


def test_budget_readout_and_time_estimate(panel):
    assert panel.flops == SMOKE.flops  # the slider's grid point 10**9.6 reads (and trains) as 4e9
    panel.budget_slider.value = 1e10
    assert panel.flops == 1e10
    assert "1e+10 FLOPs" in panel.budget_label.value
    seconds = 1e10 / (PEAK * panel.efficiency)
    assert panel.efficiency_source == "assumed"
    assert "estimate" in panel.time_label.value and f"{PEAK / 1e9:,.0f} GFLOP/s" in panel.time_label.value
    assert widgets._duration(seconds) in panel.time_label.value


def test_budget_too_small_is_flagged_before_training(synthetic, store):
    small = SMOKE.replace(flops_min=1e6, flops=1e6)
    p = widgets.train_panel(synthetic, store=store, profile=small, peak_flops=PEAK, device="cpu")
    assert "too small for one training step" in p.budget_label.value


# ------------------------------------------------------------------ training


def test_train_button_trains_stores_and_then_reuses(panel, store, synthetic):
    assert len(store) == 0 and "Not trained yet" in panel.status.value
    panel.train_button.click()
    run = panel.last_run
    assert panel.last_error is None, panel.last_error
    assert run is not None and run.status == "ok" and not run.from_store
    floor = synthetic.entropy_for(SMOKE.seq_len)[0]
    assert floor < run.final_val_loss < math.log(synthetic.vocab_size)
    assert run.run_id in store and len(store) == 1
    assert run.config == panel.config and run.budget == {"kind": "flops", "value": panel.flops}
    assert pngs(panel.output), "the loss curve was not drawn into the panel"
    assert panel.progress.value == 1.0
    assert f"{run.final_val_loss:.3f} nats/token" in panel.status.value
    assert f"floor {floor:.3f}" in panel.status.value
    # the time estimate now uses the speed this run reached
    assert panel.efficiency_source == "measured"
    assert panel.efficiency == pytest.approx(run.flops / run.wall_s / PEAK)

    panel.train_button.click()  # same settings: straight from the store
    again = panel.last_run
    assert again.from_store and again.run_id == run.run_id and again.final_val_loss == run.final_val_loss
    assert len(store) == 1 and "from the store" in panel.status.value and pngs(panel.output)

    # moving away clears the plot; moving back shows the stored run at once
    default = panel.size_slider.value
    panel.size_slider.value = panel.size_slider.options[0][1]
    assert not pngs(panel.output) and "Not trained yet" in panel.status.value
    panel.size_slider.value = default
    assert pngs(panel.output) and "📦" in panel.status.value

    # a new panel on the same store shows it as soon as it opens
    fresh = widgets.train_panel(synthetic, store=store, profile=SMOKE, peak_flops=PEAK, device="cpu")
    assert pngs(fresh.output) and f"{run.final_val_loss:.3f}" in fresh.status.value
    assert fresh.efficiency_source == "measured"


def test_error_in_the_train_callback_shows_in_the_panel(synthetic, store):
    small = SMOKE.replace(flops_min=1e6, flops=1e6)
    p = widgets.train_panel(synthetic, store=store, profile=small, peak_flops=PEAK, device="cpu")
    p.train_button.click()  # must not raise
    assert isinstance(p.last_error, ValueError)
    assert "ValueError" in p.status.value and "too small for one step" in p.status.value
    assert p.last_run is None and len(store) == 0
    assert p.train_button.disabled is False
    assert not [o for o in p.output.outputs if o.get("name") == "stderr"], "a bad setting needs no traceback"


def test_unexpected_error_shows_its_traceback(panel, monkeypatch):
    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(panel, "load_corpus", broken)
    panel.train_button.click()
    assert "RuntimeError: disk on fire" in panel.status.value
    stderr = "".join(o["text"] for o in panel.output.outputs if o.get("name") == "stderr")
    assert "Traceback" in stderr and "disk on fire" in stderr
    assert panel.train_button.disabled is False


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="corpus=42"):
        widgets.train_panel(42, profile=SMOKE)
    with pytest.raises(ValueError, match="store='runs'"):
        widgets.train_panel("synthetic", store="runs", profile=SMOKE)
    with pytest.raises(ValueError, match="name='huge'"):
        widgets.train_panel("synthetic", profile="huge")
    with pytest.raises(ValueError, match="seed=-1"):
        widgets.train_panel("synthetic", profile=SMOKE, seed=-1)
    with pytest.raises(ValueError, match="peak_flops=0"):
        widgets.train_panel("synthetic", profile=SMOKE, peak_flops=0)


# ------------------------------------------------------------------ live plot and figures


class FakeOutput:
    outputs = ()


def state(step, loss):
    return TrainState(step, 10, step * 100, step * 1e6, loss, 1e-3, 0.01 * step, step / 10)


def test_live_plot_throttles_and_draws_the_whole_run_at_the_end(synthetic):
    out = FakeOutput()
    live = LiveLossPlot(out, floor=3.0, interval_s=1e9)
    for step in range(1, 6):
        live.on_step(state(step, 6.0 - 0.1 * step))
    assert out.outputs == ()  # throttled: nothing drawn mid-run

    eager = LiveLossPlot(out, floor=3.0, interval_s=0.0)
    eager.on_step(state(1, 6.0))
    assert out.outputs == ()  # one point is not a curve
    eager.on_step(state(2, 5.9))
    eager.on_eval(state(2, 5.9), 5.95)
    assert len(pngs(out)) == 1 and eager.val == [[2, 200, 5.95]]

    class R:
        train_curve = [[1, 100, 6.0], [2, 200, 5.9]]
        val_curve = [[2, 200, 5.95]]
        status = "ok"

    out.outputs = ()
    live.on_end(R())
    assert len(pngs(out)) == 1


def test_loss_curve_figure():
    train = [[s, s * 100, 6.0 - 0.2 * s] for s in range(1, 11)]
    val = [[5, 500, 5.1], [10, 1000, 4.2]]
    fig = plots.loss_curve({"a": (train, val)}, floor=3.5, title="t")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "entropy floor 3.500" in labels and "a (validation)" in labels
    low, high = ax.get_ylim()
    assert low < 3.5 < 4.0 < high  # the floor is visible
    assert plots.figure_png(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="runs_or_curves"):
        plots.loss_curve("not a run")


def test_loss_curve_keeps_a_loss_below_the_floor_visible():
    fig = plots.loss_curve({"bug": ([[1, 100, 5.0], [2, 200, 2.0]], [])}, floor=3.0)
    assert fig.axes[0].get_ylim()[0] < 2.0


# ------------------------------------------------------------------ profiles


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("COT_LAB_PROFILE", "smoke")
    assert profiles.profile().name == "smoke"
    monkeypatch.setenv("COT_LAB_PROFILE", " Laptop ")
    assert profiles.profile().name == "laptop"
    monkeypatch.setenv("COT_LAB_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"COT_LAB_PROFILE='fast'.*smoke, laptop, gpu"):
        profiles.profile()


def test_profile_auto_follows_cuda(monkeypatch):
    import torch

    monkeypatch.delenv("COT_LAB_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.profile().name == "laptop"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.profile().name == "gpu"
    monkeypatch.setenv("COT_LAB_PROFILE", "auto")
    assert profiles.profile().name == "gpu"


def test_profile_validation():
    with pytest.raises(ValueError, match="params=1e\\+09"):
        SMOKE.replace(params=1e9)
    with pytest.raises(ValueError, match="batch_size=0"):
        SMOKE.replace(batch_size=0)
    assert profiles.profile(SMOKE) is SMOKE


@pytest.mark.parametrize("name", list(profiles.PROFILES))
def test_profile_default_run_is_a_real_run(name):
    """The default panel run trains for enough steps to draw a curve, and the profiles grow in budget."""
    P = profiles.PROFILES[name]
    cfg = cl.preset(P.params, vocab_size=512, seq_len=P.seq_len)
    steps = P.flops / cl.flops_per_token(cfg) / (P.batch_size * P.seq_len)
    assert steps >= 15, f"{name}: the default run has only {steps:.0f} steps"
    largest = cl.preset(P.params_max, vocab_size=512, seq_len=P.seq_len)
    assert P.flops_max / cl.flops_per_token(largest) / (P.batch_size * P.seq_len) >= 1
    order = list(profiles.PROFILES)
    if order.index(name) > 0:
        assert P.flops > profiles.PROFILES[order[order.index(name) - 1]].flops
