"""Controlled shifts of the synthetic language (`synthetic_shift`): their floors are exact, their rows shifted,
a model's loss on them measurable, and the unshifted language untouched."""
import numpy as np
import pytest
import torch

import cot_lab as cl
from cot_lab.data import synthetic, synthetic_grammar as grammar
from cot_lab.data.synthetic import SyntheticCorpus
from cot_lab.data.synthetic_shift import SHIFTS, ShiftSpec, clause_depths, parse_shift, topic_posterior

V3_FINGERPRINT = "7596d69eed3cf213"  # every shipped result set is keyed on it
HELD_OUT = list(SHIFTS["rare-topics"].topics)


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("COT_LAB_HOME", str(tmp_path_factory.mktemp("cot_lab_home")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def base():
    return SyntheticCorpus(version=3)


@pytest.fixture(scope="module")
def shifted():
    return {name: SyntheticCorpus(version=3, shift=name) for name in ("rare-topics", "common-topics", "deep-nesting")}


# ---------------------------------------------------------------- the floor is exact
@pytest.mark.parametrize("name", ["rare-topics", "deep-nesting"])
def test_shifted_floor_recomputed_by_scoring_matches_the_generator(base, shifted, name):
    corpus = shifted[name]
    mean, se = corpus.entropy_for(128)
    # the validation rows behind the estimate, with the log-probabilities the generator drew them with
    n_rows = synthetic.ENTROPY_TOKENS // 128
    chunks = [corpus._chunk(synthetic.VAL, 0, 128, i, with_logp=True) for i in range(2)]
    rows, logp, _ = (np.concatenate(a)[:n_rows] for a in zip(*chunks))
    assert len(rows) == n_rows and np.array_equal(rows, corpus.val_batch(n_rows, 128).numpy())
    nats = corpus.score(rows)  # from the tokens alone: topic marginalised by Bayes' rule over the shifted prior
    np.testing.assert_allclose(nats, -logp, rtol=0, atol=1e-6)
    assert abs(mean + logp.mean()) < 1e-6 and abs(nats.mean() - mean) < 1e-6
    assert 0 < se < 0.005  # the floor is a mean over 2^19 exact token losses: its standard error
    # an independent sample of the shifted language agrees within its error
    _, other, _ = grammar.sample(corpus.language, 1500, 129, np.random.default_rng(5))
    assert abs(-other.mean(1).mean() - mean) < 4 * np.hypot(se, other.mean(1).std() / np.sqrt(1500))
    # and the shifted floor is another number than the unshifted one (~0.02 nats below it)
    assert abs(mean - base.entropy) > 5 * np.hypot(se, base.entropy_se)


def test_shifted_next_token_distributions_are_proper_and_agree_with_score(shifted):
    for corpus in (shifted["rare-topics"], shifted["deep-nesting"]):
        rows = corpus.val_batch(200, 96).numpy()
        nats = corpus.score(rows)
        for cut in (1, 40, 96):
            dist = corpus.next_token_distribution(rows[:, :cut])
            np.testing.assert_allclose(dist.sum(1), 1.0, rtol=0, atol=1e-9)
            np.testing.assert_allclose(dist[np.arange(200), rows[:, cut]], np.exp(-nats[:, cut - 1]), rtol=1e-9)


# ---------------------------------------------------------------- same language, shifted rows
def test_unshifted_language_untouched_and_shift_keeps_its_tables(base, shifted):
    assert base.fingerprint == V3_FINGERPRINT == SyntheticCorpus(version=3, shift=None).fingerprint
    assert base.name == "synthetic-v3" and base.shift is None
    prints = {c.fingerprint for c in shifted.values()}
    assert len(prints) == 3 and V3_FINGERPRINT not in prints
    for corpus in shifted.values():
        lang = corpus.language
        assert lang.words == base.language.words
        for table in ("word_p", "pref_p", "token_topic_p"):  # words, topics' vocabularies, knowledge
            assert np.array_equal(getattr(lang, table), getattr(base.language, table)), table
    rare, deep = shifted["rare-topics"].language, shifted["deep-nesting"].language
    prior = base.language.rules.topic_prior
    np.testing.assert_allclose(rare.rules.topic_prior[HELD_OUT], prior[HELD_OUT] / prior[HELD_OUT].sum(), rtol=1e-12)
    assert rare.rules.topic_prior[:12].sum() == 0 and np.array_equal(rare.class_p, base.language.class_p)
    assert np.array_equal(deep.rules.topic_prior, prior) and not np.array_equal(deep.class_p, base.language.class_p)
    assert "12, 13, 14, 15" in shifted["rare-topics"].describe() and "10x" in shifted["deep-nesting"].describe()


def test_held_out_topics_appear_only_in_the_shifted_rows(base, shifted):
    rows = {name: c.val_batch(1000, 128).numpy() for name, c in shifted.items()}
    unshifted = base.val_batch(1000, 128).numpy()
    assert all(not np.array_equal(r, unshifted) for r in rows.values())
    # which topics the documents come from, read off their words with the unshifted language's exact posterior
    mass = {name: topic_posterior(base, r)[:, HELD_OUT].sum(1).mean() for name, r in rows.items()}
    prior_mass = base.language.rules.topic_prior[HELD_OUT].sum()  # ~0.08
    in_unshifted = topic_posterior(base, unshifted)[:, HELD_OUT].sum(1).mean()
    assert abs(in_unshifted - prior_mass) < 0.02  # the posterior is calibrated: on average the prior
    assert mass["rare-topics"] > 0.75 and mass["common-topics"] < 0.03, mass
    # under each shifted language's own prior, a document's topic is in its set for certain
    assert topic_posterior(shifted["rare-topics"], rows["rare-topics"])[:, :12].max() == 0
    assert topic_posterior(shifted["common-topics"], rows["common-topics"])[:, HELD_OUT].max() == 0


def test_deep_nesting_holds_depths_the_unshifted_rows_lack(base, shifted):
    deep = clause_depths(base, shifted["deep-nesting"].val_batch(1000, 128))
    flat = clause_depths(base, base.val_batch(1000, 128))
    assert (deep >= 1).mean() > 5 * (flat >= 1).mean()       # ~21% of tokens inside a clause, against ~2%
    assert (deep >= 2).mean() > 30 * max((flat >= 2).mean(), 1e-4)  # ~4% at depth 2+, against ~0.03%
    assert (deep == grammar.MAX_DEPTH).any()


# ---------------------------------------------------------------- a model's loss on shifted rows
def test_a_models_loss_on_shifted_rows_is_measurable_above_the_exact_floor(base, shifted):
    cfg = cl.preset(2e4, vocab_size=base.vocab_size, seq_len=64)
    model = cl.build_model(cfg, seed=0)
    corpus = shifted["rare-topics"]
    loss = cl.evaluate_loss(model, corpus, n_sequences=16)
    assert np.isfinite(loss) and loss == cl.evaluate_loss(model, corpus, n_sequences=16)
    assert loss != cl.evaluate_loss(model, base, n_sequences=16)
    floor, _ = corpus.entropy_for(64)
    assert loss - floor > 1.0  # an untrained model sits far above the shifted floor
    rows = corpus.val_batch(16, 64)
    with torch.no_grad():
        logits = model(input_ids=rows[:, :-1]).logits.float()
    by_hand = torch.nn.functional.cross_entropy(logits.transpose(1, 2), rows[:, 1:], reduction="none")
    excess = by_hand.numpy() - corpus.score(rows)  # the excess on the very rows, token by token
    assert abs(float(excess.mean()) - (loss - corpus.score(rows).mean())) < 1e-4
    # even the unshifted language's exact model pays for the shift: its loss on the shifted rows is above their floor
    many = corpus.val_batch(1000, 64)
    assert base.score(many).mean() - corpus.score(many).mean() > 0.01


# ---------------------------------------------------------------- ways to ask for a shift
def test_shift_by_name_preset_or_spec(shifted):
    rare = shifted["rare-topics"]
    assert rare.name == "synthetic-v3:rare-topics"
    assert cl.load_corpus("synthetic-v3:rare-topics").fingerprint == rare.fingerprint
    assert cl.load_corpus("synthetic-v3", shift=ShiftSpec(topics=(15, 14, 13, 12))).fingerprint == rare.fingerprint
    assert parse_shift("topics=12,13,14,15") == SHIFTS["rare-topics"] and parse_shift(None) is None
    both = SyntheticCorpus(version=3, shift="topics=12,13,14,15+nesting=10")
    assert both.name == "synthetic-v3:topics=12,13,14,15+nesting=10"
    assert cl.load_corpus(both.name).fingerprint == both.fingerprint not in {c.fingerprint for c in shifted.values()}
    assert cl.load_corpus("synthetic:deep-nesting").fingerprint != cl.load_corpus("synthetic").fingerprint


@pytest.mark.parametrize("call, arg, works", [
    (lambda: SyntheticCorpus(version=3, shift="sideways"), "shift", "rare-topics"),
    (lambda: SyntheticCorpus(version=3, shift=3), "shift", "ShiftSpec"),
    (lambda: cl.load_corpus("synthetic-v3:topics=a,b"), "shift", "topics=12,13,14,15"),
    (lambda: cl.load_corpus("synthetic-v3:nesting=lots"), "shift", "nesting"),
    (lambda: cl.load_corpus("synthetic-v3:topics=16"), "topics", "0..15"),
    (lambda: ShiftSpec(topics=()), "topics", "0..15"),
    (lambda: ShiftSpec(topics=(3, 3)), "topics", "distinct"),
    (lambda: ShiftSpec(topics=(True,)), "topics", "0..15"),
    (lambda: ShiftSpec(topics=range(16)), "topics", "name fewer"),
    (lambda: ShiftSpec(nesting=-1), "nesting", r"\[0, 100\]"),
    (lambda: ShiftSpec(nesting=float("nan")), "nesting", "e.g. 10"),
    (lambda: ShiftSpec(nesting="10"), "nesting", "e.g. 10"),
    (lambda: ShiftSpec(), "shifts nothing", "nesting=10"),
    (lambda: topic_posterior("synthetic-v3", np.zeros((1, 4), np.int64)), "corpus", "load_corpus"),
    (lambda: clause_depths(SyntheticCorpus(version=3), np.ones((2, 4), np.int64)), "rows", "<doc>"),
])
def test_bad_shift_arguments_raise_value_error_naming_them(call, arg, works):
    with pytest.raises(ValueError, match=arg) as err:
        call()
    assert err.match(works)


# ---------------------------------------------------------------- a run of the unshifted language, tested shifted
def test_loss_by_skill_takes_a_run_of_the_unshifted_language_on_its_shift(base, shifted):
    cfg = cl.ModelConfig(d_model=16, n_layer=1, n_head=1, seq_len=32, vocab_size=base.vocab_size)
    run = cl.train(cfg, base, tokens=4096, batch_size=4, progress=False, eval_sequences=4, compile=False,
                   precision="fp32")
    assert shifted["rare-topics"].unshifted_fingerprint == base.fingerprint == base.unshifted_fingerprint
    report = cl.loss_by_skill(run, shifted["rare-topics"], n_sequences=8)
    # the same model, passed as a model, gives the same split: the run was accepted, not re-routed
    again = cl.loss_by_skill(run.load_model(), shifted["rare-topics"], n_sequences=8)
    assert report.model == pytest.approx(again.model, abs=1e-9) and report.floor == pytest.approx(again.floor, abs=1e-9)
    other = cl.train(cfg, cl.load_corpus("synthetic"), tokens=4096, batch_size=4, progress=False, eval_sequences=4,
                     compile=False, precision="fp32")
    with pytest.raises(ValueError, match="trained on another corpus"):
        cl.loss_by_skill(other, shifted["rare-topics"], n_sequences=8)
