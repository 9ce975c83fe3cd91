"""One model-file format (store checkpoints and saved models, dense and MoE) and one training loop (recovery is cl.train)."""
import copy

import pytest
import torch
from safetensors.torch import save_model as raw_save

import cot_lab as cl
from cot_lab.core.checkpoint import read_metadata, weights_fingerprint

TINY = dict(d_model=32, n_layer=2, n_head=2, vocab_size=512, seq_len=32)


@pytest.fixture(scope="module")
def synthetic():
    return cl.load_corpus("synthetic")


def logits(model, seed=0):
    rows = torch.randint(0, 512, (2, 32), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model.eval()(input_ids=rows).logits


def test_a_store_checkpoint_opens_with_cl_load_model(tmp_path, synthetic):
    store = cl.RunStore(tmp_path / "store")
    run = cl.train(cl.ModelConfig(**TINY), synthetic, tokens=16 * 32 * 5, batch_size=16, eval_sequences=4,
                   store=store, progress=False)
    path = store.checkpoint_path(run.run_id)
    meta = read_metadata(path)
    assert meta["run_id"] == run.run_id and meta["architecture"] == "LlamaForCausalLM"
    model = cl.load_model(path)
    assert cl.config_of(model) == run.config
    assert torch.equal(logits(model), logits(store.load_model(run.run_id)))
    assert torch.equal(logits(model), logits(run.load_model()))


def test_an_moe_model_saves_and_loads(tmp_path):
    cfg = cl.ModelConfig(**{**TINY, "arch": "moe", "n_experts": 4, "top_k": 2})
    model = cl.build_model(cfg, seed=3)
    path = cl.save_model(model, tmp_path / "moe.safetensors")
    again = cl.load_model(path)
    assert type(again).__name__ == "MixtralForCausalLM" and cl.config_of(again) == cfg
    assert torch.allclose(logits(model), logits(again), atol=1e-6)


def test_a_checkpoint_written_before_the_format_still_opens(tmp_path, synthetic):
    """Old store checkpoints carry only their run id; the store's record has the config."""
    store = cl.RunStore(tmp_path / "store")
    run = cl.train(cl.ModelConfig(**TINY), synthetic, tokens=16 * 32 * 3, batch_size=16, eval_sequences=4,
                   store=store, progress=False)
    path = store.checkpoint_path(run.run_id)
    model = run.load_model()
    raw_save(model, str(path), metadata={"run_id": run.run_id})  # the old writer's exact call
    assert "format" not in read_metadata(path)
    assert torch.equal(logits(cl.load_model(path)), logits(model))
    assert torch.equal(logits(store.load_model(run.run_id)), logits(model))


def test_a_file_that_is_not_a_model_is_refused(tmp_path):
    path = tmp_path / "x.safetensors"
    raw_save(torch.nn.Linear(2, 2), str(path), metadata={"format": "something else"})
    with pytest.raises(ValueError, match="not a cot-lab model file"):
        cl.load_model(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        cl.load_model(tmp_path / "missing.safetensors")


def test_weights_fingerprint_follows_the_weights():
    model = cl.build_model(cl.ModelConfig(**TINY), seed=0)
    twin = copy.deepcopy(model)
    assert weights_fingerprint(model) == weights_fingerprint(twin)
    with torch.no_grad():
        twin.model.layers[0].mlp.up_proj.weight[0, 0] += 1e-3
    assert weights_fingerprint(model) != weights_fingerprint(twin)


def test_recovery_is_a_run_of_the_one_trainer(tmp_path, synthetic):
    """recover() trains through cl.train: a stored run with its evaluation curve, zeros kept, and a second call
    with the same pruned weights comes back from the store with the same weights."""
    store = cl.RunStore(tmp_path / "store")
    base = cl.train(cl.ModelConfig(**TINY), synthetic, tokens=16 * 32 * 20, batch_size=16, eval_sequences=8,
                    store=store, progress=False).load_model()
    pruned = cl.prune(copy.deepcopy(base), 0.5, "magnitude")
    twin = copy.deepcopy(pruned)
    zeros = pruned.model.layers[0].mlp.up_proj.weight == 0
    cl.recover(pruned, synthetic, tokens=16 * 32 * 20, batch_size=16, eval_sequences=8, store=store)
    step = cl.compress.history(pruned)[-1]
    run = store.get(step["run_id"])
    assert run.status == "ok" and run.steps == 20 and len(run.val_curve) >= 1
    assert run.hparams["init"] == weights_fingerprint(twin) and run.hparams["lr"] == pytest.approx(
        0.1 * cl.default_lr(run.config))  # FINETUNE_LR_SHARE, measured in compress/recovery.py
    assert run.final_val_loss == pytest.approx(step["val_loss_after"])
    assert bool((pruned.model.layers[0].mlp.up_proj.weight[zeros] == 0).all())
    cl.recover(twin, synthetic, tokens=16 * 32 * 20, batch_size=16, eval_sequences=8, store=store)
    assert cl.compress.history(twin)[-1]["run_id"] == run.run_id
    assert torch.equal(logits(twin), logits(pruned))


def test_train_from_a_model_of_another_shape_is_refused(synthetic):
    model = cl.build_model(cl.ModelConfig(**TINY))
    with pytest.raises(ValueError, match="init is a model of shape"):
        cl.train(cl.ModelConfig(**{**TINY, "d_model": 64, "n_head": 4}), synthetic, tokens=16 * 32, init=model,
                 progress=False)
