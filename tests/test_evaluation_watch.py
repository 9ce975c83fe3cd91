"""SliceLossCallback: the loss on named row sets over a real (tiny) training, and what it refuses."""
import numpy as np
import pytest

import cot_lab as cl
from cot_lab.evaluation import SliceLossCallback, document_losses


@pytest.fixture(scope="module")
def corpus():
    return cl.load_corpus("synthetic-v3")


def test_records_start_every_and_end_and_match_the_final_model(corpus):
    val = corpus.val_batch(24, 32)
    watch = SliceLossCallback({"a": val[:8], "b": val[8:]}, every=4)
    seen = []
    watch.on_measure = seen.append
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=1, seq_len=32, vocab_size=corpus.vocab_size)
    run = cl.train(cfg, corpus, tokens=32 * 4 * 30, batch_size=4, progress=False, eval_sequences=4, compile=False,
                   precision="fp32", lr=0.02, callbacks=[watch])
    assert run.steps == 30
    assert [r["step"] for r in watch.records] == [0, 4, 8, 12, 16, 20, 24, 28, 30]  # the start, every 4, the last
    assert [r["trained_tokens"] for r in watch.records] == [s * 128 for s in (0, 4, 8, 12, 16, 20, 24, 28, 30)]
    assert seen == watch.records and list(watch.frame().columns) == ["step", "trained_tokens", "a", "b"]
    # an untrained model sits near ln(512); the last record is the trained model's loss on those very rows
    assert abs(watch.records[0]["a"] - np.log(512)) < 0.3
    final = run.load_model()
    assert watch.records[-1]["a"] == pytest.approx(document_losses(final, val[:8]).mean(), abs=1e-5)
    assert watch.records[-1]["b"] == pytest.approx(document_losses(final, val[8:]).mean(), abs=1e-5)
    assert watch.records[-1]["a"] < watch.records[0]["a"] - 0.1


@pytest.mark.parametrize("slices, every, match", [
    ({}, 5, "non-empty dict"),
    ([1, 2], 5, "non-empty dict"),
    ({"step": np.zeros((2, 9), np.int64)}, 5, "may not be named"),
    ({"a": np.zeros((2, 9), np.int64)}, 0, "every"),
])
def test_bad_input_names_the_argument(slices, every, match):
    with pytest.raises(ValueError, match=match):
        SliceLossCallback(slices, every=every)


def test_rows_outside_the_vocabulary_are_refused_at_the_start(corpus):
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=1, seq_len=32, vocab_size=corpus.vocab_size)
    watch = SliceLossCallback({"bad": np.full((2, 33), 600, np.int64)}, every=2)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        cl.train(cfg, corpus, tokens=32 * 4 * 2, batch_size=4, progress=False, eval_sequences=4, compile=False,
                 precision="fp32", callbacks=[watch])
