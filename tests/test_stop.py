"""Stop that stops: the panel's Stop button and the notebook's Stop (a kernel interrupt), in a real kernel.

A click is sent the way JupyterLab sends it (a widget comm message to the button's model), the interrupt
the way the server sends it (SIGINT to the kernel process). Each stop must end the run within a few
steps, kept in the store and marked "interrupted", and leave the kernel able to train again.
"""
import os
import signal
import sys
import threading
import time

import pytest

from cot_lab.core.interrupts import StopRequested, check_stop, interrupts_deferred
from cot_lab.ui.action import ActionBar, Eta, LongAction
from cot_lab.ui.panel import Panel

# ------------------------------------------------------------------------------------------- units


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_eta_starts_from_the_estimate_and_moves_to_the_measured_rate():
    clock = FakeClock()
    eta = Eta(expected_s=200.0, clock=clock)
    assert eta.remaining_s(0.0) == pytest.approx(200.0)  # before any progress: the estimate made up front
    clock.now += 10.0  # set-up (imports, data): not progress, not extrapolated
    assert eta.remaining_s(0.0) == pytest.approx(200.0)
    clock.now += 5.0  # then 10% in 5 s: the true total is 50 s, so 45 s are left at 10%
    remaining = eta.remaining_s(0.1)
    weight = 0.1 / (0.1 + 0.05)  # derived by hand from the rule: equal trust at 5% progress
    assert remaining == pytest.approx(weight * 45.0 + (1 - weight) * 0.9 * 200.0)
    clock.now += 40.0  # 90% after 45 s of progress: 5 s left by the measured rate
    assert eta.remaining_s(0.9) == pytest.approx((0.9 / 0.95) * 5.0 + (0.05 / 0.95) * 20.0)


def test_eta_without_an_estimate_waits_for_a_measurement():
    clock = FakeClock()
    eta = Eta(None, clock=clock)
    assert eta.remaining_s(0.0) is None
    clock.now += 30.0
    assert eta.remaining_s(0.5) == pytest.approx(30.0)


def test_stop_check_and_validation():
    stop = threading.Event()
    check_stop(stop)
    check_stop(None)
    stop.set()
    with pytest.raises(StopRequested):
        check_stop(stop)
    with pytest.raises(KeyboardInterrupt):  # a stop request ends a run the way the notebook's Stop does
        check_stop(stop)
    import cot_lab as cl

    with pytest.raises(ValueError, match="stop="):
        cl.train(cl.preset(2e4, vocab_size=512, seq_len=32), cl.load_corpus("synthetic"), flops=1e9, stop="yes")


def test_a_sigint_during_a_deferred_block_arrives_after_it():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached_end = False
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                reached_end = True
        assert reached_end
    finally:
        signal.signal(signal.SIGINT, previous)


def test_long_action_stops_from_its_button_and_reports_one_bar():
    import ipywidgets as W

    panel = Panel()
    action = LongAction(panel, W.Button(description="Go"), name="job")
    steps = []

    def job(ctx):
        for i in range(10_000):
            ctx.check()
            ctx.report(i / 10_000, f"step {i}", force=True)
            steps.append(i)
            time.sleep(0.005)
        return "finished"

    thread = action.start(job, 50.0)
    assert action.start_button.disabled and not action.stop_button.disabled
    with pytest.raises(ValueError, match="still running"):  # one action at a time
        action.start(job, 50.0)
    while len(steps) < 20:
        time.sleep(0.01)
    action.stop_button.click()
    thread.join(timeout=5)
    assert not thread.is_alive() and len(steps) < 10_000
    assert not action.start_button.disabled and action.stop_button.disabled
    assert "stopped" in action.bar.text.value and "took" in action.bar.text.value
    assert "nothing was done" in panel.status.value  # the job stopped itself before any result existed


def test_bar_shows_elapsed_and_eta_from_the_first_moment():
    bar = ActionBar()
    bar.begin(94.0)
    assert "starting" in bar.text.value and "0:00 elapsed" in bar.text.value
    assert "then about 1:34 of work" in bar.text.value  # the estimate, before the first step: set-up not included
    bar.show(0.5, "step 5 of 10")
    assert bar.bar.value == 0.5 and bar.text.value.startswith("step 5 of 10 · 0:00 elapsed")
    assert "about 0:47 left" in bar.text.value  # half done: half the estimate, until a rate is measured


# ------------------------------------------------------------------------------------ real kernel

pytest.importorskip("jupyter_client")


@pytest.fixture()
def kernel(tmp_path):
    from jupyter_client.manager import KernelManager

    env = {**os.environ, "COT_LAB_PROFILE": "smoke", "COT_LAB_HOME": str(tmp_path / "home")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    yield km, kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def execute(kc, code: str, timeout: float = 300) -> str:
    """Run `code` in the kernel; its stdout, or an AssertionError with the traceback."""
    msg_id = kc.execute(code)
    out, deadline = [], time.monotonic() + timeout
    while True:
        msg = kc.get_iopub_msg(timeout=max(1.0, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return "".join(out)


def click(kc, model_id: str) -> None:
    """What JupyterLab sends when a Button is clicked."""
    kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": model_id,
                                                      "data": {"method": "custom", "content": {"event": "click"}}}))


def wait_for(kc, expression: str, timeout: float = 240) -> str:
    """Poll `expression` in the kernel until it is truthy (the training runs in a background thread)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = execute(kc, f"print(repr({expression}))").strip()
        if value not in ("False", "None", "''", "0"):
            return value
        time.sleep(0.5)
    raise AssertionError(f"{expression} stayed false for {timeout} s")


PANEL = """
import cot_lab as cl
from cot_lab.start.panel import train_panel
p = train_panel(cl.load_corpus("synthetic"), peak_flops=1e11)
p.budget_slider.value = 10 ** p.budget_slider.max  # the smoke profile's largest budget: far more steps than we wait for
print(p.train_button.model_id, p.action.stop_button.model_id)

def steps_shown():  # the step the panel's bar shows (its text is throttled: not every step appears)
    import re
    shown = re.match(r"step ([\d,]+)", p.action.bar.text.value)
    return int(shown[1].replace(",", "")) if shown else 0
"""


@pytest.mark.parametrize("how", ["stop button", "kernel interrupt"])
def test_panel_training_stops_within_a_few_steps(kernel, how):
    km, kc = kernel
    train_id, stop_id = execute(kc, PANEL).split()
    click(kc, train_id)
    wait_for(kc, "steps_shown() >= 3")  # training, past its first steps
    if how == "stop button":
        click(kc, stop_id)
    else:
        km.interrupt_kernel()  # the notebook's Stop; the kernel is idle, the run is in the panel's thread
    wait_for(kc, "not p.action.running")
    result = execute(kc, "r = p.last_run; print(r.status, r.steps, p.store.get(r.run_id).status)")
    status, steps, stored = result.split()
    assert status == "interrupted" and stored == "interrupted"
    total = int(execute(kc, "from cot_lab.core.training import plan_run\n"
                            "print(plan_run(p.config, p.load_corpus(), flops=p.flops, batch_size=p.profile.batch_size,"
                            " eval_sequences=p.profile.eval_sequences).total_steps)"))
    assert 3 <= int(steps) < total // 2
    assert "interrupted" in execute(kc, "print(p.status.value)")
    # the kernel is fine and Train works again: this time to the end
    execute(kc, "p.budget_slider.value = 10 ** p.budget_slider.min")
    click(kc, train_id)
    wait_for(kc, "p.last_run is not None and p.last_run.status == 'ok'")


TRIPWIRE = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell starts us with SIGINT ignored


class Tripwire:  # sends the Stop exactly when the import of transformers reaches this module: half-way
    fired = False

    def find_spec(self, name, path=None, target=None):
        if name == "sympy.polys.monomials" and not Tripwire.fired:
            Tripwire.fired = True
            os.kill(os.getpid(), signal.SIGINT)
        return None


sys.meta_path.insert(0, Tripwire())
import cot_lab as cl

corpus = cl.load_corpus("synthetic")
cfg = cl.preset(2e4, vocab_size=corpus.vocab_size, seq_len=32)
first = cl.train(cfg, corpus, flops=3e9, batch_size=4, progress=False)
second = cl.train(cfg, corpus, flops=3e9, batch_size=4, progress=False)
print(Tripwire.fired, first.status, first.steps, second.status, second.steps > 0)
"""


def test_a_stop_half_way_through_the_first_import_is_kept_until_it_is_done(tmp_path):
    """Interrupted half-way, transformers' import failed for good ("Could not import module 'LlamaConfig'")
    until a restart; the import now holds the Stop, and the run ends interrupted before its first step."""
    import subprocess

    env = {**os.environ, "COT_LAB_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", TRIPWIRE], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["True", "interrupted", "0", "ok", "True"]
