"""The training panel driven without a browser, the live plot, the figures, and the profiles."""
import math

import pytest
from matplotlib.figure import Figure

import cot_lab as cl
from cot_lab.ui import figures as plots
from cot_lab.core import profiles
from cot_lab.start import panel as widgets
from cot_lab.core.callbacks import TrainState
from cot_lab.ui.figure_check import assert_readable
from cot_lab.ui.format import duration
from cot_lab.ui.live import LiveLossPlot

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
    assert duration(seconds) in panel.time_label.value


def test_budget_too_small_is_flagged_before_training(synthetic, store):
    small = SMOKE.replace(flops_min=1e6, flops=1e6)
    p = widgets.train_panel(synthetic, store=store, profile=small, peak_flops=PEAK, device="cpu")
    assert "too small for one training step" in p.budget_label.value


# ------------------------------------------------------------------ training


def click_and_wait(panel):
    """Press Train as a student does (the run goes to the panel's background thread) and wait for it."""
    panel.train_button.click()
    if panel.action.thread is not None:
        panel.action.thread.join(timeout=600)
        assert not panel.action.thread.is_alive()


def test_train_button_trains_stores_and_then_reuses(panel, store, synthetic):
    assert len(store) == 0 and "Not trained yet" in panel.status.value
    click_and_wait(panel)
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

    click_and_wait(panel)  # same settings: straight from the store
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
    click_and_wait(p)  # must not raise
    assert isinstance(p.last_error, ValueError)
    assert "ValueError" in p.status.value and "too small for one step" in p.status.value
    assert p.last_run is None and len(store) == 0
    assert p.train_button.disabled is False
    assert not [o for o in p.output.outputs if o.get("name") == "stderr"], "a bad setting needs no traceback"


def test_unexpected_error_shows_its_traceback(panel, monkeypatch):
    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(panel, "load_corpus", broken)
    click_and_wait(panel)
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
    assert_readable(fig, must_show_y=[train[0][2]])  # the first step's loss is not clipped away
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


# ------------------------------------------------------------------ store lookups on a slider move

from cot_lab.core.device import device_name
from cot_lab.data import DEFAULT_VOCAB
from cot_lab.core.runs import Run, now_iso
from cot_lab.core.training import plan_run


def finished(run_id, cfg, corpus, *, flops, seed=0, status="ok", corpus_name=None, fingerprint=None, wall_s=2.0,
             device="cpu", dev_name=None, points=300):
    """A finished-looking run (no model) with the settings `train` would store for this panel's arguments."""
    plan = plan_run(cfg, corpus, flops=flops, seed=seed, batch_size=SMOKE.batch_size,
                    eval_sequences=SMOKE.eval_sequences, device="cpu")
    return Run(run_id=run_id or plan.key, config=cfg, corpus=corpus_name or corpus.name,
               corpus_fingerprint=fingerprint or corpus.fingerprint, budget=plan.budget, hparams=dict(plan.hparams),
               status=status, steps=points, tokens=points * plan.tokens_per_step, flops=flops, wall_s=wall_s,
               train_s=wall_s, train_curve=[[i, i * plan.tokens_per_step, 6.0 - i / points] for i in range(1, points + 1)],
               val_curve=[[points, points * plan.tokens_per_step, 5.1]], final_val_loss=5.1, device=device,
               device_name=dev_name or device_name("cpu"), precision=plan.precision, created_at=now_iso())


def test_a_slider_move_decodes_only_the_stored_run_it_shows(panel, store, synthetic, decoded):
    sizes = [v for _, v in panel.size_slider.options]
    flops = panel.flops
    # near misses of the settings the slider will reach, and runs of every other size
    for i, size in enumerate(sizes[1:-1]):
        store.save(finished(None, panel._configs[size], synthetic, flops=flops))
        store.save(finished(f"seed-{i}", panel._configs[size], synthetic, flops=flops, seed=1))
    last = panel._configs[sizes[-1]]
    store.save(finished(None, last, synthetic, flops=flops, seed=1))
    store.save(finished(None, last, synthetic, flops=2 * flops))
    store.save(finished("other-corpus", last, synthetic, flops=flops, corpus_name="python-docs", fingerprint="fp-x"))
    stored = finished(None, last, synthetic, flops=flops)
    store.save(stored)
    assert len(store) >= 20
    decoded.clear()

    panel.size_slider.value = sizes[0]  # nothing stored there
    assert decoded == [] and "Not trained yet" in panel.status.value and not pngs(panel.output)
    panel.size_slider.value = sizes[-1]  # stored: the one record it shows is the one decoded
    assert panel.last_error is None, panel.last_error
    assert decoded == [stored.run_id]
    assert "📦" in panel.status.value and pngs(panel.output) and panel.progress.value == 1.0
    decoded.clear()
    panel.budget_slider.value = 10 ** (math.log10(flops) + 0.3)  # 2x the budget: stored as well
    assert panel.flops == 2 * flops and len(decoded) == 1 and "📦" in panel.status.value
    decoded.clear()
    panel.budget_slider.value = 10 ** (math.log10(flops) + 0.6)
    assert decoded == [] and "Not trained yet" in panel.status.value

    # an interrupted run with the same key is not a stored result, and is not decoded to find that out
    panel.budget_slider.value = 10 ** math.log10(flops)
    store.save(finished(None, last, synthetic, flops=flops, status="interrupted"))
    decoded.clear()
    panel.size_slider.value = sizes[0]
    panel.size_slider.value = sizes[-1]
    assert decoded == [] and "Not trained yet" in panel.status.value


def test_a_corpus_not_loaded_yet_finds_its_runs_by_name(panel, store, synthetic, decoded):
    panel.corpus_dropdown.value = "python-docs"  # the dropdown names it; nothing loads it before Train
    assert "python-docs" not in panel._corpora and panel.last_error is None, panel.last_error
    cfg, flops = panel.config, panel.flops
    assert cfg.vocab_size == DEFAULT_VOCAB == synthetic.vocab_size  # so synthetic can stand in to plan them
    docs = dict(corpus_name="python-docs", fingerprint="fp-docs")  # whatever its fingerprint will be
    store.save(finished("code-run", cfg, synthetic, flops=flops, corpus_name="python-code", fingerprint="fp-code"))
    store.save(finished("docs-seed-1", cfg, synthetic, flops=flops, seed=1, **docs))
    store.save(finished("synthetic-run", cfg, synthetic, flops=flops))
    decoded.clear()
    panel.budget_slider.value = 10 ** (math.log10(flops) + 0.3)
    panel.budget_slider.value = 10 ** math.log10(flops)
    assert decoded == [] and "Not trained yet" in panel.status.value
    older = finished("docs-older", cfg, synthetic, flops=flops, corpus_name="python-docs", fingerprint="fp-docs-0")
    newer = finished("docs-newer", cfg, synthetic, flops=flops, **docs)
    store.save(older)
    store.save(newer)
    panel.size_slider.value = panel.size_slider.options[0][1]
    panel.size_slider.value = cl.count_params(cfg).total
    assert panel.last_error is None, panel.last_error
    assert decoded == ["docs-newer"] and "📦" in panel.status.value and pngs(panel.output)


def test_a_new_panel_estimates_time_from_the_nearest_sizes_on_this_device(synthetic, store, decoded):
    cfg = cl.preset(SMOKE.params, vocab_size=synthetic.vocab_size, seq_len=SMOKE.seq_len)
    far_small = cl.preset(SMOKE.params_min, vocab_size=synthetic.vocab_size, seq_len=SMOKE.seq_len)
    far_big = cl.preset(SMOKE.params_max, vocab_size=synthetic.vocab_size, seq_len=SMOKE.seq_len)
    for i, rate in enumerate((2e9, 3e9, 4e9)):  # this size on this CPU: FLOP/s of wall time
        store.save(finished(f"mine-{i}", cfg, synthetic, flops=rate * 2.0, wall_s=2.0))
    store.save(finished("small", far_small, synthetic, flops=1e8, wall_s=1.0))  # farther in size: not the nearest 3
    store.save(finished("big", far_big, synthetic, flops=1e11, wall_s=1.0))
    store.save(finished("untimed", cfg, synthetic, flops=5e9, wall_s=0.0))  # no speed to learn from
    store.save(finished("other-cpu", cfg, synthetic, flops=6e9, wall_s=1.0, dev_name="some other CPU"))
    store.save(finished("gpu", cfg, synthetic, flops=7e9, wall_s=1.0, device="cuda", dev_name="H100"))
    decoded.clear()
    p = widgets.train_panel(synthetic, store=store, profile=SMOKE, peak_flops=PEAK, device="cpu")
    assert decoded == []  # the estimate reads indexed columns only: no record is decoded
    assert p.config == cfg
    assert p.efficiency_source == "measured" and p.efficiency == pytest.approx(3e9 / PEAK)  # the median of the three
    assert duration(p.flops / 3e9) in p.time_label.value and "nearest-size" in p.time_label.value


def test_moving_back_to_a_stored_run_reuses_its_drawn_curve(panel, store, synthetic, monkeypatch):
    sizes = [v for _, v in panel.size_slider.options]
    stored = finished(None, panel._configs[sizes[-1]], synthetic, flops=panel.flops)
    store.save(stored)
    drawn = []
    real_on_end = widgets.LiveLossPlot.on_end
    monkeypatch.setattr(widgets.LiveLossPlot, "on_end", lambda self, run: (drawn.append(run.run_id),
                                                                            real_on_end(self, run))[1])
    panel.size_slider.value = sizes[-1]
    first = pngs(panel.output)
    assert drawn == [stored.run_id] and first and "📦" in panel.status.value
    panel.size_slider.value = sizes[0]
    assert not pngs(panel.output) and "Not trained yet" in panel.status.value
    panel.size_slider.value = sizes[-1]
    assert drawn == [stored.run_id] and pngs(panel.output) == first and "📦" in panel.status.value
    # the same key trained again (a new record) is drawn again, not shown from the old picture
    store.save(finished(None, panel._configs[sizes[-1]], synthetic, flops=panel.flops, points=50))
    panel.size_slider.value = sizes[0]
    panel.size_slider.value = sizes[-1]
    assert drawn == [stored.run_id] * 2 and pngs(panel.output) and pngs(panel.output) != first
