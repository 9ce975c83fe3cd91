"""Shipped models (cot_lab/precomputed/models/): they load by name, their checksums are checked, their records
are true (the validation loss recomputed here matches), they are real `cl.train` runs, and they stay small."""
import json
import shutil

import pytest

import cot_lab as cl
from cot_lab.compress import study
from cot_lab.core import shipped as sh

MAX_SHIPPED_BYTES = 10 * 2**20  # everything under precomputed/models/ together (the wheel carries it)
# Golden facts of the shipped models (from their specs; the losses are the records').
EXPECTED = {"laptop-67k": dict(n_params=66_848, seq_len=128, flops=4e12),
            "smoke-29k": dict(n_params=29_024, seq_len=64, flops=3e10),
            "lifetime-67k": dict(n_params=66_848, seq_len=128, flops=3.105e12),
            "lifetime-33k": dict(n_params=33_192, seq_len=128, flops=9.386e12)}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def loaded(request):
    return request.param, *cl.shipped_model(request.param)


def test_every_spec_is_shipped_and_every_profile_of_notebook_03_has_its_model():
    assert sh.shipped_models() == sorted(EXPECTED) == sorted(sh.SPECS)
    assert set(study.SHIPPED_FOR_PROFILE) == set(cl.core.profiles.PROFILES)
    assert set(study.SHIPPED_FOR_PROFILE.values()) <= set(sh.shipped_models())


def test_shipped_model_loads_with_its_record(loaded):
    name, model, run = loaded
    want = EXPECTED[name]
    assert run.status == "ok" and run.n_params == want["n_params"] == sum(p.numel() for p in model.parameters())
    assert run.config.seq_len == want["seq_len"] and cl.config_of(model) == run.config
    assert run.budget == {"kind": "flops", "value": want["flops"]}
    assert run.flops == pytest.approx(want["flops"], rel=0.01)  # whole steps: a little under the budget
    assert run.load_model() is model and not model.training
    entry = json.loads((sh.models_dir() / sh.MANIFEST).read_text())["models"][name]
    assert (entry["run_id"], entry["n_params"], entry["tokens"]) == (run.run_id, run.n_params, run.tokens)
    assert entry["final_val_loss"] == run.final_val_loss


def test_recomputed_validation_loss_matches_the_record(loaded):
    name, model, run = loaded
    corpus = cl.load_corpus(sh.SPECS[name].corpus)
    assert run.corpus_fingerprint == corpus.fingerprint
    loss = cl.evaluate_loss(model, corpus, n_sequences=run.hparams["eval_sequences"])
    assert loss == pytest.approx(run.final_val_loss, abs=2e-4)  # bf16 autocast and eager attention in training
    floor = corpus.entropy_for(run.config.seq_len)[0]
    assert floor < loss < floor + 1.0


@pytest.mark.xfail(strict=True, reason="measured: laptop-67k (d32 x 4, version-2 language, 4e12 FLOPs) ends at 3.317 "
                   "nats/token; the re-shipped held-out runs (d40 x 5, synthetic-v3, 8e12 FLOPs, 2 seeds) at 3.146. The "
                   "sweep moved to another language, ladder and budget, so the two are no longer the same run")
def test_laptop_model_is_trained_near_compute_optimal_like_the_shipped_holdout_run():
    _, run = cl.shipped_model("laptop-67k")
    holdout = cl.core.results.load_results("laptop")["holdout"]["runs"][0]  # meant to be the same shape and budget
    assert run.final_val_loss == pytest.approx(holdout.final_val_loss, abs=0.03)


def test_laptop_model_is_the_record_it_says():
    _, run = cl.shipped_model("laptop-67k")
    # 4e12 FLOPs on the 66,848-parameter shape buys ~99 tokens per parameter (trainer's FLOP count, by hand)
    assert run.budget == {"kind": "flops", "value": 4e12} and run.n_params == 66848
    assert run.tokens / run.n_params == pytest.approx(4e12 / cl.flops_per_token(run.config) / 66848, rel=1e-3)
    assert 80 < run.tokens / run.n_params < 120


def _copy(tmp_path):
    root = tmp_path / "models"
    shutil.copytree(sh.models_dir(), root)
    return root


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
def test_a_tampered_file_is_refused(tmp_path, suffix):
    root = _copy(tmp_path)
    model, _ = cl.shipped_model("smoke-29k", root=root)  # the copy loads as it is
    path = root / f"smoke-29k{suffix}"
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # one bit of the last tensor's bytes (or the JSON's closing text)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        cl.shipped_model("smoke-29k", root=root)


def test_an_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match=r"name='nope'.*laptop-67k.*smoke-29k"):
        cl.shipped_model("nope")
    with pytest.raises(ValueError, match="buildable"):
        sh.build_shipped_model("nope")


def test_everything_shipped_fits_in_10_mb():
    files = [p for p in sh.models_dir().iterdir() if p.is_file()]
    assert {p.name for p in files} == {sh.MANIFEST} | {f"{n}{s}" for n in EXPECTED for s in (".safetensors", ".json")}
    assert sum(p.stat().st_size for p in files) <= MAX_SHIPPED_BYTES


def test_rebuilding_the_smoke_model_with_cl_train_reproduces_its_record(tmp_path):

    _, shipped = cl.shipped_model("smoke-29k")
    root = tmp_path / "models"
    run = sh.build_shipped_model("smoke-29k", out=root, store=cl.RunStore(tmp_path / "store"), progress=False)
    assert sh.shipped_models(root) == ["smoke-29k"]
    model, back = cl.shipped_model("smoke-29k", root=root)
    assert back.run_id == run.run_id and back.tokens == shipped.tokens and back.steps == shipped.steps
    if (run.device, run.precision) == (shipped.device, shipped.precision):
        assert run.run_id == shipped.run_id  # the same settings, so the same run key
        # the same seeded data and init; kernels on another machine or thread count may sum in another order
        assert run.final_val_loss == pytest.approx(shipped.final_val_loss, abs=0.02)
    again = sh.build_shipped_model("smoke-29k", out=root, store=cl.RunStore(tmp_path / "store"), progress=False)
    assert again.from_store and again.final_val_loss == run.final_val_loss  # a rebuild resumes from the store
