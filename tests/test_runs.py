"""The run store: cache hits, safetensors checkpoints, concurrent writers, interrupts from a real SIGINT."""
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

import cot_lab as cl

TINY = dict(d_model=32, n_layer=2, n_head=2, seq_len=32)


def _run(corpus, store, **kwargs):
    cfg = cl.ModelConfig(vocab_size=corpus.vocab_size, **TINY)
    kwargs = {"tokens": 8 * 32 * 30, "batch_size": 8, "progress": False, "eval_sequences": 16, **kwargs}
    return cl.train(cfg, corpus, store=store, **kwargs)


def test_store_returns_cached_run_without_training(synthetic, tmp_path, monkeypatch):
    store = cl.RunStore(tmp_path / "s")
    first = _run(synthetic, store)
    assert not first.from_store and first.run_id in store and len(store) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a cached run must not train")

    import importlib

    monkeypatch.setattr(importlib.import_module("cot_lab.train"), "_train_step", no_training)
    again = _run(synthetic, store)
    assert again.from_store
    assert again.final_val_loss == first.final_val_loss
    assert again.val_curve == first.val_curve and again.config == first.config
    # anything that decides the result changes the key
    monkeypatch.undo()
    other = _run(synthetic, store, seed=1)
    assert other.run_id != first.run_id and len(store) == 2


def test_checkpoint_round_trip_gives_same_loss(synthetic, tmp_path):
    store = cl.RunStore(tmp_path / "s")
    run = _run(synthetic, store)
    path = store.checkpoint_path(run.run_id)
    assert path.exists() and path.suffix == ".safetensors"
    reopened = cl.RunStore(tmp_path / "s").get(run.run_id)  # a fresh process would see the same
    model = reopened.load_model()
    assert cl.evaluate_loss(model, synthetic, n_sequences=16, seq_len=32) == pytest.approx(run.final_val_loss, abs=1e-5)
    frame = store.to_frame()
    assert list(frame["run_id"]) == [run.run_id]
    assert frame.loc[0, "n_params"] == cl.count_params(run.config).total
    assert frame.loc[0, "final_val_loss"] == pytest.approx(run.final_val_loss)


def test_store_rejects_a_file_as_root(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="root="):
        cl.RunStore(tmp_path / "f")
    with pytest.raises(ValueError, match="status='done'"):
        cl.RunStore(tmp_path / "ok").runs(status="done")


def test_default_store_lives_under_cot_lab_home(cot_lab_home):
    assert cl.RunStore().root == cot_lab_home / "runs"


WRITER = textwrap.dedent("""
    import sys, cot_lab as cl
    from cot_lab.runs import Run, now_iso
    store = cl.RunStore(sys.argv[1])
    cfg = cl.ModelConfig(d_model=32, n_layer=1, n_head=2, seq_len=16)
    model = cl.build_model(cfg, seed=0)
    for i in range(int(sys.argv[3])):
        run = Run(run_id=f"{sys.argv[2]}-{i}", config=cfg, corpus="synthetic", corpus_fingerprint="x",
                  budget={"kind": "tokens", "value": 1.0}, hparams={"seed": i}, final_val_loss=float(i),
                  created_at=now_iso())
        store.save(run, model if i % 3 == 0 else None)
""")


def test_two_processes_writing_at_once_corrupt_nothing(tmp_path):
    root = tmp_path / "shared"
    cl.RunStore(root)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(root), name, "25"]) for name in ("a", "b")]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    store = cl.RunStore(root)
    assert len(store) == 50
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sorted(r.hparams["seed"] for r in store.runs()) == sorted(list(range(25)) * 2)
    assert len(list((root / "checkpoints").glob("*.safetensors"))) == 18  # i = 0, 3, ..., 24 for each writer
    assert not list((root / "checkpoints").glob("*.tmp"))
    store.load_model("a-3")  # a checkpoint written under contention loads


INTERRUPTED = textwrap.dedent("""
    import json, signal, sys, cot_lab as cl
    # a process started in the background ignores SIGINT; the Jupyter kernel restores it, so do we
    signal.signal(signal.SIGINT, signal.default_int_handler)
    class Started(cl.Callback):
        def on_step(self, state):
            if state.step == 3:
                open(sys.argv[2], "w").write("started")
    corpus = cl.load_corpus("synthetic")
    cfg = cl.ModelConfig(d_model=64, n_layer=2, n_head=4, seq_len=64, vocab_size=corpus.vocab_size)
    run = cl.train(cfg, corpus, tokens=1e9, batch_size=8, store=cl.RunStore(sys.argv[1]),
                   callbacks=[Started()], progress=False, eval_sequences=8, compile=False)
    print(json.dumps({"status": run.status, "steps": run.steps, "run_id": run.run_id}))
""")


def test_sigint_leaves_store_consistent_and_run_marked_interrupted(tmp_path):
    root, marker, script = tmp_path / "store", tmp_path / "started", tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED)
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(marker)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ})
    deadline = time.time() + 240
    while not marker.exists():
        assert proc.poll() is None, "the training process died before it started"
        assert time.time() < deadline, "training did not start"
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "interrupted" and result["steps"] >= 3
    store = cl.RunStore(root)
    stored = store.get(result["run_id"])
    assert stored.status == "interrupted" and stored.steps == result["steps"]
    assert math.isnan(stored.final_val_loss)
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.load_model(result["run_id"])  # the partial weights are there and whole
