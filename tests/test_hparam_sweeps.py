"""Learning-rate and batch sweeps: each run is the run `cl.train` gives, resumable, and bad grids are named."""
import pytest

import cot_lab as cl
from cot_lab.hparams.sweeps import HparamSweep, batch_sweep, loss_at_lr, lr_sweep

CFG = cl.ModelConfig(d_model=16, n_layer=1, n_head=2, vocab_size=512, seq_len=16)
FLOPS = 2e9  # a few hundred steps of 4 sequences


@pytest.fixture(scope="module")
def corpus():
    return cl.load_corpus("synthetic")


def test_an_lr_sweep_trains_each_rate_as_cl_train_would_and_resumes(corpus, tmp_path):
    store = cl.RunStore(tmp_path / "store")
    sweep = lr_sweep(CFG, corpus, flops=FLOPS, lrs=[4e-2, 1e-3, 1e-2], batch_size=4, store=store, progress=False,
                     precision="fp32", eval_sequences=16)
    assert sweep.varied == "lr" and sweep.values() == [1e-3, 1e-2, 4e-2]  # sorted
    alone = cl.train(CFG, corpus, flops=FLOPS, lr=1e-2, batch_size=4, progress=False, precision="fp32",
                     eval_sequences=16)
    assert sweep.runs[1].final_val_loss == pytest.approx(alone.final_val_loss, abs=1e-5)  # batched = alone
    again = lr_sweep(CFG, corpus, flops=FLOPS, lrs=[1e-3, 1e-2, 4e-2], batch_size=4, store=store, progress=False,
                     precision="fp32", eval_sequences=16)
    assert all(r.from_store for r in again.runs) and [r.run_id for r in again.runs] == [r.run_id for r in sweep.runs]
    frame = sweep.to_frame()
    assert list(frame["lr"]) == [1e-3, 1e-2, 4e-2] and (frame["batch_size"] == 4).all()
    lr, loss, _ = sweep.best()
    assert 1e-3 <= lr <= 4e-2 and loss <= frame["final_val_loss"].max()
    assert loss_at_lr(sweep, 1e-2) == pytest.approx(sweep.runs[1].final_val_loss, abs=1e-12)
    with pytest.raises(ValueError, match="outside"):
        loss_at_lr(sweep, 1.0)


def test_a_batch_sweep_holds_the_budget_and_the_rate(corpus, tmp_path):
    sweep = batch_sweep(CFG, corpus, flops=FLOPS, batch_sizes=[8, 2], lr=5e-3, store=cl.RunStore(tmp_path / "s"),
                        progress=False, eval_sequences=16)
    assert sweep.varied == "batch_size" and sweep.values() == [2, 8]
    steps = [r.steps for r in sweep.runs]
    assert steps[0] == pytest.approx(4 * steps[1], rel=0.01)  # a quarter of the batch: four times the steps
    assert all(r.hparams["lr"] == 5e-3 for r in sweep.runs)
    assert all(r.flops <= FLOPS for r in sweep.runs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(lrs=[]), "lrs must be a non-empty list"),
    (dict(lrs=[1e-3, -1e-3]), r"lrs\[\]"),
    (dict(lrs=[1e-3, 1e-3]), "repeats"),
    (dict(lrs=[1e-3], batch_size=0), "batch_size"),
    (dict(lrs=[1e-3], batch_size=100_000), "larger than flops"),
    (dict(lrs=[1e-3], flops=-1.0), "flops"),
])
def test_bad_lr_sweeps_are_named(corpus, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lr_sweep(CFG, corpus, **({"flops": FLOPS} | kwargs), progress=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_sizes=[]), "batch_sizes must be a non-empty list"),
    (dict(batch_sizes=[2, 0]), r"batch_sizes\[\]"),
    (dict(batch_sizes=[2], lr=0.0), "lr"),
])
def test_bad_batch_sweeps_are_named(corpus, kwargs, match):
    with pytest.raises(ValueError, match=match):
        batch_sweep(CFG, corpus, flops=FLOPS, **kwargs, progress=False)


def test_best_needs_three_finished_runs():
    with pytest.raises(ValueError, match="at least 3"):
        HparamSweep("lr", []).best()
