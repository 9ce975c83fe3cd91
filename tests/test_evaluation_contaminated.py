"""A contaminated corpus: planted validation rows in the training stream, where they are, and what training on them does.

The positions are checked by scanning the stream itself; the loss gap by a real (tiny) cl.train on synthetic-v3.
"""
import itertools

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.evaluation import ContaminatedCorpus, Plants, document_losses

T = 32


@pytest.fixture(scope="module")
def corpus():
    return cl.load_corpus("synthetic-v3")


def rows_of(corpus, n, batch_size, seq_len=T, seed=0):
    """The first n training rows, taken batch by batch."""
    batches = corpus.train_batches(batch_size, seq_len, seed)
    return np.concatenate([next(batches).numpy() for _ in range(-(-n // batch_size))])[:n]


def test_positions_match_the_stream_and_the_counts_add_up(corpus):
    planted = corpus.val_batch(16, T)[:3].numpy()
    dirty, plants = cl.contaminate(corpus, planted, copies=5, seed=1, horizon=40)
    assert isinstance(dirty, ContaminatedCorpus) and isinstance(plants, Plants) and plants is dirty.plants
    frame = plants.frame()
    assert len(frame) == 3 * 5 and set(frame.columns) == {"planted", "copy", "position"}
    assert frame.position.between(0, 39).all() and frame.position.is_unique
    stream = rows_of(dirty, 60, batch_size=8)
    found = {(i, p) for p in range(60) for i in range(3) if np.array_equal(stream[p], planted[i])}
    assert found == set(zip(frame.planted, frame.position))  # recorded positions are exactly where the rows appear
    # The other rows are the base's rows in their order: 60 - 15 of them.
    clean = rows_of(corpus, 45, batch_size=8)
    np.testing.assert_array_equal(stream[~np.isin(np.arange(60), frame.position)], clean)


def test_batch_size_does_not_change_the_stream(corpus):
    dirty, _ = cl.contaminate(corpus, corpus.val_batch(8, T)[:2], copies=4, horizon=24)
    np.testing.assert_array_equal(rows_of(dirty, 48, batch_size=2), rows_of(dirty, 48, batch_size=8))
    np.testing.assert_array_equal(rows_of(dirty, 48, 8, seed=3), rows_of(dirty, 48, 2, seed=3))
    assert not np.array_equal(rows_of(dirty, 48, 8, seed=3), rows_of(dirty, 48, 8, seed=0))


def test_copies_zero_is_the_base_stream_and_the_base_fingerprint(corpus):
    dirty, plants = cl.contaminate(corpus, corpus.val_batch(8, T)[:2], copies=0, horizon=24)
    np.testing.assert_array_equal(rows_of(dirty, 40, 8), rows_of(corpus, 40, 8))
    assert plants.positions.shape == (2, 0)
    assert dirty.fingerprint == corpus.fingerprint  # same tokens, same key: a stored clean run is rightly reused


def test_fingerprint_differs_from_the_base_and_is_deterministic(corpus):
    val = corpus.val_batch(8, T)
    make = lambda **kw: cl.contaminate(corpus, val[:2], **{"copies": 3, "seed": 0, "horizon": 24, **kw})[0].fingerprint
    fp = make()
    assert fp != corpus.fingerprint and fp == make() and fp == make()
    others = {make(copies=4), make(seed=1), make(horizon=25),
              cl.contaminate(corpus, val[2:4], copies=3, seed=0, horizon=24)[0].fingerprint}
    assert fp not in others and len(others) == 4


def test_val_batch_and_entropy_pass_through(corpus):
    dirty, _ = cl.contaminate(corpus, corpus.val_batch(8, T)[:2], copies=2, horizon=24)
    np.testing.assert_array_equal(dirty.val_batch(8, T).numpy(), corpus.val_batch(8, T).numpy())
    assert dirty.entropy_for(T) == corpus.entropy_for(T) and dirty.vocab_size == corpus.vocab_size


def test_the_list_version_still_works():
    out, plants = cl.contaminate(["a b", "c d"], ["x y"], copies=2, seed=0)
    assert len(out) == 4 and sorted(plants.positions.ravel().tolist()) == [i for i, d in enumerate(out) if d == "x y"]
    with pytest.raises(ValueError, match="horizon"):
        cl.contaminate(["a b"], ["x y"], copies=1, horizon=10)


@pytest.mark.parametrize("kwargs, match", [
    ({"copies": -1}, "copies"),
    ({"planted": np.zeros((0, T + 1), np.int64)}, "planted is empty"),
    ({"planted": [[1, 2, 3], [1, 2]]}, "different lengths"),
    ({"planted": [[1]]}, "at least 2"),
    ({"planted": [[1, 2, 10**6]]}, r"\[0, 512\)"),
    ({"copies": 10, "horizon": 15}, r"horizon >= 20"),
])
def test_bad_input_names_the_argument(corpus, kwargs, match):
    args = {"planted": corpus.val_batch(4, T)[:2], "copies": 2, "horizon": 24, **kwargs}
    with pytest.raises(ValueError, match=match):
        cl.contaminate(corpus, args.pop("planted"), **args)


def test_training_at_another_seq_len_is_refused(corpus):
    dirty, _ = cl.contaminate(corpus, corpus.val_batch(4, T)[:2], copies=2, horizon=24)
    with pytest.raises(ValueError, match=f"seq_len={T}"):
        next(dirty.train_batches(4, T + 1, 0))


def test_training_on_the_plants_lowers_their_loss_but_not_the_clean_rows(corpus):
    seq_len, horizon = 64, 160
    val = corpus.val_batch(64, seq_len)
    dirty, _ = cl.contaminate(corpus, val[:4], copies=20, horizon=horizon)  # 80 of the first 160 rows are plants
    cfg = cl.ModelConfig(d_model=32, n_layer=1, n_head=2, seq_len=seq_len, vocab_size=corpus.vocab_size)
    gaps = {}
    for name, source in (("dirty", dirty), ("clean", corpus)):
        run = cl.train(cfg, source, tokens=horizon * seq_len, batch_size=8, seed=0, precision="fp32", progress=False,
                       eval_sequences=8, compile=False)
        losses = document_losses(run, val)
        gaps[name] = losses[4:].mean() - losses[:4].mean()  # clean held-out loss minus the planted rows' loss
    # Measured: dirty ~0.42 nats/token, clean ~0.02 (the 4-row mean's standard error is ~0.04).
    assert gaps["dirty"] > 0.25, gaps
    assert abs(gaps["clean"]) < 0.1, gaps
