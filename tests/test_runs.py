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

    monkeypatch.setattr(importlib.import_module("cot_lab.core.training"), "_train_step", no_training)
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
    # the same computation on both sides: the trainer scores validation with the body at its training precision
    # (bf16 autocast on CPU), evaluate_loss in fp32, and the two differ in the 5th digit
    import torch
    from cot_lab.core.training import stacked_validation_losses

    amp_dtype = {"fp32": None, "bf16": torch.bfloat16}[run.precision]
    val_rows = synthetic.val_batch(16, 32)
    assert stacked_validation_losses([model], run.config, val_rows, "sdpa", amp_dtype)[0] == pytest.approx(
        run.final_val_loss, abs=1e-5)
    assert cl.evaluate_loss(model, synthetic, n_sequences=16, seq_len=32) == pytest.approx(
        cl.evaluate_loss(run.load_model(), synthetic, n_sequences=16, seq_len=32), abs=1e-6)
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
    from cot_lab.core.runs import Run, now_iso
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


# ------------------------------------------------------------------ indexed lookups and the schema migration

from cot_lab.core.runs import Run, RunStore, now_iso, settings_key
from cot_lab.core.training import plan_run

CPU_NAME = "Test CPU A"


def fake_run(run_id, *, seed=0, device="cpu", device_name=CPU_NAME, wall_s=1.0, corpus="synthetic", status="ok",
             points=300, created_at=None):
    """A finished-looking run without a model: a train curve of `points` steps, like a real one."""
    cfg = cl.ModelConfig(d_model=32, n_layer=1, n_head=2, seq_len=16)
    return Run(run_id=run_id, config=cfg, corpus=corpus, corpus_fingerprint=f"fp-{corpus}",
               budget={"kind": "flops", "value": 1e9}, hparams={"seed": seed, "batch_size": 8, "lr": 1e-3},
               status=status, steps=points, tokens=points * 128, flops=points * 128 * 1e4, wall_s=wall_s,
               train_s=wall_s, train_curve=[[i, i * 128, 5.0 - i * 1e-3] for i in range(1, points + 1)],
               val_curve=[[points, points * 128, 4.5]], final_val_loss=4.5, device=device, device_name=device_name,
               created_at=created_at or now_iso())


@pytest.fixture()
def statements(monkeypatch):
    """Every SQL statement the stores run while the test runs (with their bound values)."""
    seen = []
    real = RunStore._connect

    def traced(self):
        closing = real(self)
        closing.con.set_trace_callback(seen.append)
        return closing

    monkeypatch.setattr(RunStore, "_connect", traced)
    return seen


def assert_no_table_scan(store, sql_statements):
    with sqlite3.connect(store.db_path) as con:
        for sql in sql_statements:
            if sql.lstrip().upper().startswith("SELECT"):
                plan = " | ".join(row[-1] for row in con.execute("EXPLAIN QUERY PLAN " + sql))
                assert "SCAN" not in plan, f"{sql!r} reads the whole table: {plan}"


def test_lookups_decode_only_the_record_they_return(tmp_path, decoded, statements):
    store = cl.RunStore(tmp_path / "s")
    for i in range(40):
        store.save(fake_run(f"r-{i}", seed=i, device="cpu" if i % 2 else "cuda", wall_s=0.0 if i == 39 else 1.0,
                            status="interrupted" if i == 20 else "ok", created_at=f"2024-01-01T00:00:00.{i:06d}Z"))
    decoded.clear()
    statements.clear()
    assert store.get("r-7", status="ok").run_id == "r-7" and decoded == ["r-7"]
    decoded.clear()
    assert store.get("r-20", status="ok") is None and store.get("nope") is None and decoded == []
    assert store.get("r-20", status="interrupted").status == "interrupted" and decoded == ["r-20"]
    decoded.clear()
    want = settings_key(fake_run("x", seed=5).to_record())
    assert store.newest(settings=want).run_id == "r-5" and decoded == ["r-5"]
    decoded.clear()
    assert store.newest(settings=settings_key(fake_run("x", seed=99).to_record())) is None and decoded == []
    # the newest run on this device with a measured speed: r-39 took no time, r-38 ran on cuda
    assert store.newest(device="cpu", device_name=CPU_NAME, timed=True).run_id == "r-37" and decoded == ["r-37"]
    decoded.clear()
    assert store.newest(device="cpu", device_name="another CPU") is None and decoded == []
    assert_no_table_scan(store, statements)
    assert len(store.runs(status="ok")) == 39 and len(decoded) == 39  # the counter does see a full listing
    with pytest.raises(ValueError, match="status='done'"):
        store.newest("done")


def test_settings_key_of_a_trained_run_matches_its_plan(synthetic, tmp_path):
    store = cl.RunStore(tmp_path / "s")
    run = _run(synthetic, store)
    cfg = cl.ModelConfig(vocab_size=synthetic.vocab_size, **TINY)
    plan = plan_run(cfg, synthetic, tokens=8 * 32 * 30, batch_size=8, eval_sequences=16)
    assert plan.key == run.run_id  # what a panel computes is what train() stored
    by_name = settings_key({**plan.spec, "corpus": synthetic.name})
    assert settings_key(store.get(run.run_id).to_record()) == by_name
    split = plan_run(cfg, synthetic, tokens=8 * 32 * 30, batch_size=8, eval_sequences=16, micro_batch_size=4)
    assert settings_key({**split.spec, "corpus": synthetic.name}) == by_name  # how a step is split is not a setting
    assert store.newest(settings=by_name).run_id == run.run_id
    assert store.newest(settings=settings_key({**plan.spec, "corpus": "python-docs"})) is None
    assert store.newest(device="cpu", device_name=cl.device_name("cpu"), timed=True).run_id == run.run_id


OLD_SCHEMA = """
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY, status TEXT NOT NULL, created_at TEXT NOT NULL, corpus TEXT NOT NULL,
    n_params INTEGER NOT NULL, tokens INTEGER NOT NULL, flops REAL NOT NULL, final_val_loss REAL,
    has_checkpoint INTEGER NOT NULL, record TEXT NOT NULL
)
"""


def write_old_store(root, runs, broken=0):
    """A store as cot_lab wrote it before the indexed columns: 10 columns, user_version 0."""
    root.mkdir(parents=True)
    (root / "checkpoints").mkdir()
    with sqlite3.connect(root / "runs.sqlite") as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(OLD_SCHEMA)
        for run in runs:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (run.run_id, run.status, run.created_at, run.corpus, run.n_params, run.tokens, run.flops,
                         run.final_val_loss, 0, json.dumps(run.to_record())))
        for i in range(broken):
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (f"broken-{i}", "ok", now_iso(), "synthetic", 1, 1, 1.0, None, 0, "{not json"))


def indexed_columns(store):
    with sqlite3.connect(store.db_path) as con:
        return con.execute("SELECT run_id, settings_key, device, device_name, wall_s FROM runs "
                           "WHERE run_id NOT LIKE 'broken-%' ORDER BY run_id").fetchall()


def test_an_old_store_is_migrated_once_on_open(tmp_path, statements):
    runs = [fake_run(f"r-{i}", seed=i, device="cpu" if i % 2 else "mps", created_at=f"2024-01-01T00:00:00.{i:06d}Z")
            for i in range(12)]
    write_old_store(tmp_path / "old", runs, broken=1)
    store = cl.RunStore(tmp_path / "old")
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
        assert {"settings_key", "device", "device_name", "wall_s"} <= columns
        assert {"runs_by_settings", "runs_by_device"} <= {row[1] for row in con.execute("PRAGMA index_list(runs)")}
        assert con.execute("SELECT settings_key FROM runs WHERE run_id='broken-0'").fetchone() == ("",)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert sum("UPDATE runs" in s for s in statements) == 12 + 1  # each row backfilled once
    # the backfill computes exactly what save() writes for the same runs
    fresh = cl.RunStore(tmp_path / "new")
    for run in runs:
        fresh.save(run)
    assert indexed_columns(store) == indexed_columns(fresh)
    assert store.newest(settings=settings_key(runs[4].to_record())).run_id == "r-4"
    assert store.newest(device="cpu", device_name=CPU_NAME, timed=True).run_id == "r-11"
    store.save(fake_run("r-new", seed=100))  # an old store takes new runs after the migration
    assert len(store) == 14 and store.get("r-new").hparams["seed"] == 100
    statements.clear()
    cl.RunStore(tmp_path / "old")  # opened again: nothing left to migrate
    assert not [s for s in statements if "UPDATE" in s or "ALTER" in s or "BEGIN" in s]


OPENER = textwrap.dedent("""
    import os, sys, time, cot_lab as cl
    open(sys.argv[2] + ".ready", "w").close()
    while not os.path.exists(sys.argv[3]):
        time.sleep(0.005)
    store = cl.RunStore(sys.argv[1])
    print(len(store), store.newest(device="cpu").run_id)
""")


def test_two_processes_opening_an_old_store_at_once_migrate_it_once(tmp_path):
    runs = [fake_run(f"r-{i:03d}", seed=i, created_at=f"2024-01-01T00:00:{i // 10:02d}.{i:06d}Z") for i in range(300)]
    root = tmp_path / "old"
    write_old_store(root, runs)
    script, go = tmp_path / "opener.py", tmp_path / "go"
    script.write_text(OPENER)
    procs = [subprocess.Popen([sys.executable, str(script), str(root), str(tmp_path / name), str(go)],
                              stdout=subprocess.PIPE, text=True) for name in ("a", "b")]
    deadline = time.time() + 240
    while not all((tmp_path / f"{name}.ready").exists() for name in ("a", "b")):
        assert all(p.poll() is None for p in procs), "an opener died before opening the store"
        assert time.time() < deadline, "the openers did not start"
        time.sleep(0.05)
    go.touch()  # both open the old store at the same moment
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert [out.split() for out in outs] == [["300", "r-299"]] * 2
    store = cl.RunStore(root)
    with sqlite3.connect(store.db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT COUNT(*) FROM runs WHERE settings_key IS NULL OR device IS NULL").fetchone() == (0,)
    fresh = cl.RunStore(tmp_path / "new")
    for run in runs:
        fresh.save(run)
    assert indexed_columns(store) == indexed_columns(fresh)
