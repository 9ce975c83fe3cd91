"""Several runs of one shape as one batched computation: the stacked forward, members equal solo runs, Stop, sweeps."""
import threading

import numpy as np
import pytest
import torch

import cot_lab as cl
from cot_lab.core import stacked_llama
from cot_lab.core.evaluate import mean_loss
from cot_lab.core.training import stacked_validation_losses
from cot_lab.scaling import sweep as sw

TINY = dict(d_model=32, n_layer=2, n_head=2, seq_len=32)
COMMON = dict(tokens=8 * 32 * 12, batch_size=8, precision="fp32", progress=False, eval_sequences=16, compile=False)


def tiny_cfg(corpus, **changes):
    return cl.ModelConfig(**{**TINY, "vocab_size": corpus.vocab_size, **changes})


@pytest.mark.parametrize("changes", [
    dict(),                                   # tied embeddings, 2 heads of 16
    dict(tie_embeddings=False),               # a separate output head
    dict(n_head=4, n_kv_head=2),              # grouped-query attention
    dict(n_head=2, head_dim=8),               # structurally pruned: heads narrower than d_model / n_head
])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_stacked_forward_equals_transformers(synthetic, changes, attention):
    cfg = tiny_cfg(synthetic, **changes)
    models = [cl.build_model(cfg, seed=s) for s in (0, 1, 2)]
    ids = torch.stack([next(synthetic.train_batches(3, cfg.seq_len, s))[:, :-1] for s in (0, 1, 2)])  # [3, 3, T]
    with torch.no_grad():
        got = stacked_llama.logits(stacked_llama.stack_weights(models), ids, cfg, attention,
                                   **stacked_llama.hf_settings(models[0]))
        for g, model in enumerate(models):
            model.set_attn_implementation(attention)
            want = model(input_ids=ids[g]).logits
            torch.testing.assert_close(got[g], want, atol=1e-5, rtol=1e-5)


def test_stacked_forward_is_only_used_for_what_it_computes(synthetic):
    assert stacked_llama.supports(cl.build_model(tiny_cfg(synthetic)))
    assert not stacked_llama.supports(cl.build_model(tiny_cfg(synthetic, arch="moe", n_experts=2, top_k=1)))


def test_stacked_validation_loss_equals_the_evaluator(synthetic):
    cfg = tiny_cfg(synthetic)
    models = [cl.build_model(cfg, seed=s) for s in (0, 1)]
    rows = synthetic.val_batch(70, cfg.seq_len)  # not a multiple of the chunk: the last chunk is short
    got = stacked_validation_losses(models, cfg, rows)
    want = [mean_loss(m, rows) for m in models]
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.fixture(scope="module")
def solo_and_group(synthetic, tmp_path_factory):
    cfg = tiny_cfg(synthetic)
    store = cl.RunStore(tmp_path_factory.mktemp("many"))
    solo = [cl.train(cfg, synthetic, seed=s, lr=lr, **COMMON) for s, lr in ((0, 3e-3), (1, 3e-3), (1, 1e-2))]
    group = cl.train_many(cfg, synthetic, seeds=[0, 1, 1], lrs=[3e-3, 3e-3, 1e-2], store=store, **COMMON)
    return solo, group, store


def test_group_members_equal_solo_runs(solo_and_group):
    solo, group, _ = solo_and_group
    for alone, member in zip(solo, group):
        assert member.run_id == alone.run_id  # the key cl.train gives the same run
        assert member.status == "ok" and member.steps == alone.steps == 12
        np.testing.assert_allclose([x[2] for x in member.train_curve], [x[2] for x in alone.train_curve], atol=1e-5)
        assert member.final_val_loss == pytest.approx(alone.final_val_loss, abs=1e-5)
        for a, b in zip(alone.load_model().parameters(), member.load_model().parameters()):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # members really differ: other seeds and learning rates give other losses
    losses = [m.final_val_loss for m in group]
    assert len({round(x, 4) for x in losses}) == 3


def test_group_members_are_stored_as_their_own_runs(solo_and_group, synthetic):
    _, group, store = solo_and_group
    assert len(store) == 3 and all(m.run_id in store for m in group)
    assert [store.get(m.run_id).hparams["seed"] for m in group] == [0, 1, 1]
    assert all(m.hparams["group_size"] == 3 for m in group)
    # each member's seconds are its share of the group's, so a group's runs add up to its wall time
    assert len({m.wall_s for m in group}) == 1 and all(0 < m.train_s <= m.wall_s for m in group)
    # found by its settings too (a panel's lookup before the corpus is loaded): group_size is not a setting
    from cot_lab.core.runs import settings_key
    from cot_lab.core.training import plan_run

    plan = plan_run(tiny_cfg(synthetic), synthetic, seed=1, lr=1e-2, **{k: v for k, v in COMMON.items() if k != "progress"})
    assert store.newest(settings=settings_key({**plan.spec, "corpus": synthetic.name})).run_id == group[2].run_id
    again = cl.train_many(tiny_cfg(synthetic), synthetic, seeds=[0, 1, 1], lrs=[3e-3, 3e-3, 1e-2], store=store, **COMMON)
    assert all(r.from_store for r in again)
    alone = cl.train(tiny_cfg(synthetic), synthetic, seed=1, lr=1e-2, store=store, **COMMON)
    assert alone.from_store and alone.run_id == group[2].run_id


def test_a_stopped_group_marks_every_unfinished_member_and_keeps_the_finished(synthetic, tmp_path):
    cfg = tiny_cfg(synthetic)
    store = cl.RunStore(tmp_path / "s")
    finished = cl.train(cfg, synthetic, seed=5, store=store, **COMMON)  # already done before the group starts
    stop = threading.Event()

    class StopAtStep(cl.Callback):
        def on_step(self, state):
            if state.step == 4:
                stop.set()

    runs = cl.train_many(cfg, synthetic, seeds=[3, 4, 5], store=store, stop=stop,
                         callbacks=[[StopAtStep()], [], []], **COMMON)
    assert [r.status for r in runs] == ["interrupted", "interrupted", "ok"]
    assert [r.steps for r in runs[:2]] == [4, 4]
    assert runs[2].from_store and runs[2].run_id == finished.run_id
    assert [store.get(r.run_id).status for r in runs] == ["interrupted", "interrupted", "ok"]
    assert store.load_model(runs[0].run_id) is not None  # the partial weights are kept, marked as partial


def test_train_many_refuses_bad_input(synthetic):
    cfg = tiny_cfg(synthetic)
    with pytest.raises(ValueError, match="lrs"):
        cl.train_many(cfg, synthetic, seeds=[0, 1], lrs=[1e-3, 2e-3, 3e-3], **COMMON)
    with pytest.raises(ValueError, match="repeat a run"):
        cl.train_many(cfg, synthetic, seeds=[0, 0], **COMMON)
    with pytest.raises(ValueError, match="init"):
        cl.train_many(cfg, synthetic, seeds=[0], init=cl.build_model(cfg), **COMMON)


def test_moe_members_train_one_after_another(synthetic):
    cfg = tiny_cfg(synthetic, arch="moe", n_experts=2, top_k=1)
    runs = cl.train_many(cfg, synthetic, seeds=[0, 1], **COMMON)
    alone = cl.train(cfg, synthetic, seed=1, **COMMON)
    assert [r.status for r in runs] == ["ok", "ok"]
    assert runs[1].final_val_loss == pytest.approx(alone.final_val_loss, abs=1e-5)


def tiny_plan():
    return sw.isoflop_plan([2e9, 6e9], 3, tokens_per_param=20, seq_len=32)


def test_sweep_groups_a_points_seeds_when_there_are_enough_groups():
    plan = tiny_plan()
    jobs = [(i, s) for i in range(len(plan)) for s in (0, 1)]
    assert sw.job_groups(plan, jobs, workers=2) == [[2 * i, 2 * i + 1] for i in range(len(plan))]
    assert sw.job_groups(plan, jobs[:4], workers=4) == [[0], [1], [2], [3]]  # 2 groups for 4 workers: spread out
    assert sw.job_groups(plan, [(i, 0) for i in range(len(plan))], workers=1) == [[i] for i in range(len(plan))]


@pytest.mark.parametrize("workers", [1, 2])
def test_sweep_with_two_seeds_stores_one_run_per_member(synthetic, tmp_path, workers):
    plan = sw.isoflop_plan([2e9], 3, tokens_per_param=20, seq_len=32)
    store = cl.RunStore(tmp_path / "s")
    result = sw.run_sweep(plan, synthetic, store, seeds=[0, 1], progress=False, workers=workers)
    assert len(result.runs) == 6 and len(store) == 6
    assert [(r.config, r.hparams["seed"]) for r in result.runs] == [(p.config, s) for p in plan for s in (0, 1)]
    alone = cl.train(plan.points[1].config, synthetic, flops=plan.points[1].flops, batch_size=plan.points[1].batch_size,
                     seed=1, store=store, progress=False)
    assert alone.from_store and alone.run_id == result.runs[3].run_id


def test_bf16_validation_loss_is_close_to_fp32(synthetic):
    cfg = tiny_cfg(synthetic)
    models = [cl.build_model(cfg, seed=0)]
    rows = synthetic.val_batch(64, cfg.seq_len)
    fp32, = stacked_validation_losses(models, cfg, rows)
    bf16, = stacked_validation_losses(models, cfg, rows, amp_dtype=torch.bfloat16)
    assert bf16 != fp32 and abs(bf16 - fp32) < 5e-3  # the body in bf16, the head and the loss in fp32


def test_a_stopped_parallel_sweep_of_groups_keeps_every_member(synthetic, tmp_path):
    plan = sw.isoflop_plan([2e9, 6e9], 3, tokens_per_param=20, seq_len=32)
    store = cl.RunStore(tmp_path / "s")
    stop = threading.Event()

    def report(fraction, text, force=False):
        if text.startswith("2 of 12 runs done · 2 training"):  # one group stored, the other worker's group mid-run
            stop.set()

    result = sw.run_sweep(plan, synthetic, store, seeds=[0, 1], workers=2, progress=False, report=report, stop=stop)
    assert result.interrupted
    by_point: dict = {}
    for r in store.runs():
        by_point.setdefault(r.config, []).append((r.hparams["seed"], r.status, r.hparams["group_size"]))
    groups = [sorted(members) for members in by_point.values()]
    assert all(len(g) == 2 and g[0][1] == g[1][1] and g[0][2] == 2 for g in groups)  # members share their fate
    assert sum(g[0][1] == "ok" for g in groups) >= 1  # the finished group is kept
    assert sum(g[0][1] == "interrupted" for g in groups) >= 1  # the stopped group: every member marked
    again = sw.run_sweep(plan, synthetic, store, seeds=[0, 1], workers=2, progress=False)
    assert not again.interrupted and len(again.runs) == 12 and all(r.status == "ok" for r in again.runs)
    assert sum(r.from_store for r in again.runs) >= 2


ORPHAN_SCRIPT = r"""
import os, sys, threading
import cot_lab as cl
from cot_lab.core.executor import run_parallel
from cot_lab.scaling.sweep import SweepPoint

corpus = cl.load_corpus("synthetic")
cfg = cl.ModelConfig(d_model=32, n_layer=2, n_head=2, seq_len=32, vocab_size=corpus.vocab_size)
point = SweepPoint(1e13, cfg, 8)  # hours of training: only the parent's death can end it


def on_step(job, flops):
    print("training", flush=True)


if __name__ == "__main__":  # spawned workers import this file again
    run_parallel([(point, [(0, 0)])], corpus, cl.RunStore(sys.argv[1]), 1, {}, lambda *a: None, on_step=on_step)
"""


def test_workers_stop_when_the_notebook_kernel_dies(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(ORPHAN_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "store")], stdout=subprocess.PIPE, text=True,
                              env={**__import__("os").environ})
    assert parent.stdout.readline().strip() == "training"  # the worker is training
    os_children = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True, text=True).stdout.split()
    parent.send_signal(signal.SIGKILL)  # a kernel restart: no clean-up code runs in the parent
    parent.wait()
    deadline = time.monotonic() + 30
    alive = lambda pid: subprocess.run(["ps", "-o", "stat=", "-p", pid], capture_output=True, text=True).stdout.strip()  # noqa: E731
    while time.monotonic() < deadline and any(alive(p) and not alive(p).startswith("Z") for p in os_children):
        time.sleep(0.5)
    assert not any(alive(p) and not alive(p).startswith("Z") for p in os_children), "a worker outlived its parent"
    runs = cl.RunStore(tmp_path / "store").runs()
    assert [r.status for r in runs] == ["interrupted"]  # its run is kept, marked as partial
