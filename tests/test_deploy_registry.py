"""The model registry of notebook 08 against real MLflow (SQLite in tmp_path): lineage, aliases, promotion through
the evaluation gate, rollback, tampered files, bad input, and a process killed mid-registration."""
import hashlib
import json
import os
import subprocess
import sys
import threading

import pytest
import torch

import cot_lab as cl
from cot_lab.core.results import config_hash
from cot_lab.deploy.registry import KILL_ENV, DeployExtraMissing, ModelVersion, Registry
from cot_lab.evaluation.datasheet import shipped_datasheet

BATCH = torch.randint(0, 512, (4, 32), generator=torch.Generator().manual_seed(0))  # token ids [b, t]


@pytest.fixture(scope="module")
def shipped():
    """{name: (model, Run)} of the two shipped models with the corpora they were trained on."""
    return {name: cl.shipped_model(name) for name in ("lifetime-67k", "laptop-67k")}


@pytest.fixture(scope="module")
def registry(tmp_path_factory, shipped):
    """A registry with v1 = lifetime-67k (synthetic-v3, with a datasheet) and v2 = laptop-67k (synthetic)."""
    reg = Registry(tmp_path_factory.mktemp("registry"))
    reg.register(shipped["lifetime-67k"][1], corpus="synthetic-v3", datasheet=shipped_datasheet("synthetic-v3"),
                 description="notebook 04's compute-optimal model")
    reg.register(shipped["laptop-67k"][0], corpus=cl.load_corpus("synthetic"), evaluation={"note": "by hand"})
    return reg


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(BATCH).logits


def test_versions_record_their_lineage_and_survive_reopening(registry, shipped):
    v1, v2 = registry.versions()
    assert (v1.version, v2.version) == (1, 2)
    for mv, (name, corpus) in zip((v1, v2), (("lifetime-67k", "synthetic-v3"), ("laptop-67k", "synthetic"))):
        model, run = shipped[name]
        independent = hashlib.sha256(json.dumps(run.config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]
        assert mv.config_hash == independent == config_hash(run)
        assert mv.config == run.config.to_dict()
        assert mv.corpus == corpus and mv.corpus_fingerprint == cl.load_corpus(corpus).fingerprint
        with open(mv.path, "rb") as f:
            assert mv.sha256 == hashlib.sha256(f.read()).hexdigest()
        assert mv.path.startswith(str(registry.root / "artifacts"))
    assert v1.run_id == shipped["lifetime-67k"][1].run_id and v1.final_val_loss == shipped["lifetime-67k"][1].final_val_loss
    assert v2.run_id is None and v2.final_val_loss is None  # registered as a bare model: no run, no loss known
    assert v1.datasheet == shipped_datasheet("synthetic-v3").to_markdown() and v1.evaluation is None
    assert v2.evaluation == {"note": "by hand"} and v2.datasheet is None
    assert v1.description == "notebook 04's compute-optimal model" and v2.description == ""
    assert json.loads(json.dumps(v1.to_dict())) == v1.to_dict()
    # MLflow's own records say the same: a version tag and the run's params
    tags = registry.client.get_model_version("cot-lab", "1").tags
    assert tags["cot_lab.sha256"] == v1.sha256 and tags["cot_lab.complete"] == "true"
    run_id = registry.client.get_model_version("cot-lab", "1").run_id
    assert registry.client.get_run(run_id).data.params["cot_lab.corpus_fingerprint"] == v1.corpus_fingerprint
    again = Registry(registry.root)
    assert again.versions() == [v1, v2] and again.get(2) == v2 and again.incomplete_versions() == []


def test_load_by_version_and_by_alias_gives_the_same_outputs(registry, shipped):
    mv, model = registry.load(1)
    assert mv == registry.get(1) and not model.training
    assert torch.equal(logits(model), logits(shipped["lifetime-67k"][0]))
    registry.set_alias("loadtest", 2, reason="a test alias")
    mv, model = registry.load("loadtest")
    assert mv.version == 2 and torch.equal(logits(model), logits(shipped["laptop-67k"][0]))
    assert registry.alias_history("loadtest") == [{"from": None, "to": 2, "at": registry.alias_history("loadtest")[0]
                                                   ["at"], "reason": "a test alias"}]


def test_promotion_is_gated_forced_with_a_reason_and_rolled_back(registry, shipped):
    champion, candidate = shipped["lifetime-67k"][0], shipped["laptop-67k"][0]
    assert registry.alias("champion") is None
    assert registry.promote(1).version == 1  # the first champion needs no gate
    assert registry.alias("champion") == 1
    with pytest.raises(ValueError, match="gate=None.*v1"):
        registry.promote(2)
    v3_rows = cl.load_corpus("synthetic-v3").val_batch(32, 128)
    gate = cl.evaluation_gate(champion, candidate, {"v3": v3_rows})
    assert not gate.passed and gate.failed == ["v3"]  # laptop-67k never saw the version-3 language
    with pytest.raises(ValueError, match="failed on 'v3'") as refused:
        registry.promote(2, gate=gate)
    assert "stays at v1" in str(refused.value) and gate.summary() in str(refused.value)
    assert registry.alias("champion") == 1
    with pytest.raises(ValueError, match="force=True needs a reason"):
        registry.promote(2, gate=gate, force=True)
    with pytest.raises(ValueError, match="force=True needs a reason"):
        registry.promote(2, gate=gate, force=True, reason="   ")
    assert registry.alias("champion") == 1
    registry.promote(2, gate=gate, force=True, reason="the shifted language is retired")
    assert registry.alias("champion") == 2
    assert registry.load("champion")[0].version == 2
    assert registry.rollback() == 1 and registry.alias("champion") == 1
    history = registry.alias_history()
    assert [(h["from"], h["to"]) for h in history] == [(None, 1), (1, 2), (2, 1)]
    assert history[0]["reason"] == "first promotion"
    assert history[1]["reason"].startswith("forced: the shifted language is retired (gate failed on v3")
    assert history[2]["reason"] == "rollback"
    assert [h["at"] for h in history] == sorted(h["at"] for h in history)
    assert Registry(registry.root).alias_history() == history  # the history is on disk, not in this object
    with pytest.raises(ValueError, match="alias='challenger' has nothing to roll back to"):
        registry.rollback("challenger")


def test_a_tampered_file_is_refused_on_load(registry):
    path = registry.get(2).path
    with open(path, "rb") as f:
        original = f.read()
    changed = bytearray(original)
    changed[-1] ^= 0xFF  # one flipped byte in the last tensor's data
    try:
        with open(path, "wb") as f:
            f.write(changed)
        with pytest.raises(ValueError, match="version 2's file .* does not match the sha256 recorded"):
            registry.load(2)
    finally:
        with open(path, "wb") as f:
            f.write(original)
    assert registry.load(2)[0].version == 2


def test_bad_input_is_refused_naming_the_argument(registry, shipped, tmp_path):
    model, run = shipped["lifetime-67k"]
    before = registry.versions()
    for call, match in [
        (lambda: registry.get(99), r"version=99 does not exist; the complete versions of 'cot-lab' are \[1, 2\]"),
        (lambda: registry.get(0), "version=0 must be a positive integer"),
        (lambda: registry.get(True), "version=True"),
        (lambda: registry.load("nobody"), "ref='nobody' is an alias that points to no version"),
        (lambda: registry.load(2.0), "ref=2.0 must be a version number"),
        (lambda: registry.alias(""), "name='' must be an alias name"),
        (lambda: registry.set_alias("", 1), "name='' must be an alias name"),
        (lambda: registry.set_alias("latest", 1), "name='latest'"),
        (lambda: registry.set_alias("champion", 7), "version=7 does not exist"),
        (lambda: registry.promote(1, alias=""), "alias='' must be an alias name"),
        (lambda: registry.promote(1, gate="passed"), "gate=str must be a GateReport"),
        (lambda: registry.rollback(""), "alias=''"),
        (lambda: registry.register(object(), corpus="synthetic-v3"), "source=object must be a cl.Run"),
        (lambda: registry.register("lifetime-67k", corpus="synthetic-v3"), "source=str"),
        (lambda: registry.register(model, corpus=""), "corpus=''"),
        (lambda: registry.register(model, corpus=42), "corpus=int"),
        (lambda: registry.register(run, corpus="synthetic"), "corpus='synthetic' has fingerprint"),
        (lambda: registry.register(model, corpus="synthetic-v3", evaluation=3), "evaluation=int"),
        (lambda: registry.register(model, corpus="synthetic-v3", datasheet=3), "datasheet=int"),
        (lambda: Registry(tmp_path, name=""), "name=''"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="path=.* is a file"):
        Registry(tmp_path / "file")
    assert registry.versions() == before  # a refused registration leaves nothing behind


def test_alias_reads_in_another_thread_see_a_version_while_aliases_move(registry):
    registry.set_alias("canary", 1)
    reader = Registry(registry.root)  # what a server thread holds: its own client on the same files
    seen, errors, stop = [], [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen.append(reader.alias("canary"))
            except Exception as error:  # noqa: BLE001 - any failure of a read is what this test looks for
                errors.append(error)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for version in (2, 1) * 5:
            registry.set_alias("canary", version)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and seen and set(seen) <= {1, 2}
    assert len(registry.alias_history("canary")) == 11


CHILD = """
import sys
import cot_lab as cl
from cot_lab.deploy.registry import Registry
model, run = cl.shipped_model("laptop-67k")
Registry(sys.argv[1]).register(run, corpus="synthetic")
print("the registration finished")
"""


def test_a_process_killed_mid_registration_leaves_no_served_version(tmp_path, shipped):
    reg = Registry(tmp_path)
    reg.register(shipped["lifetime-67k"][1], corpus="synthetic-v3")
    reg.promote(1)
    # both children at once (they only share SQLite, which serialises them): half the wall time of one after the other
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env={**os.environ, KILL_ENV: step})
                for step in ("after_artifact", "after_version")]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 137 and "finished" not in out, err[-2000:]
    reopened = Registry(tmp_path)
    assert [mv.version for mv in reopened.versions()] == [1]
    assert reopened.incomplete_versions() == [2]  # after_artifact made no version; after_version made v2, unfinished
    with pytest.raises(ValueError, match="version=2 is incomplete"):
        reopened.load(2)
    with pytest.raises(ValueError, match="version=2 is incomplete"):
        reopened.promote(2, force=True, reason="no")
    assert reopened.alias("champion") == 1 and len(reopened.alias_history()) == 1
    mv = reopened.register(shipped["laptop-67k"][1], corpus="synthetic")
    assert mv.version == 3 and [v.version for v in reopened.versions()] == [1, 3]
    assert torch.equal(logits(reopened.load(3)[1]), logits(shipped["laptop-67k"][0]))
    assert reopened.alias("champion") == 1


def test_a_missing_mlflow_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.raises(DeployExtraMissing, match=r'pip install "cot-lab\[deploy\]"'):
        Registry(tmp_path)
    assert issubclass(DeployExtraMissing, ImportError) and ModelVersion.__dataclass_params__.frozen


def test_importing_the_registry_does_not_import_mlflow():
    code = "import sys, cot_lab, cot_lab.deploy.registry; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
