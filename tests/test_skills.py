"""Version 3 of the synthetic language (many small skills) and the loss split by skill (`cl.loss_by_skill`)."""
import copy
import dataclasses
import itertools

import numpy as np
import pytest
import scipy.stats
import torch

import cot_lab as cl
from cot_lab.data import synthetic_grammar as grammar
from cot_lab.data.synthetic import SyntheticCorpus
from cot_lab.data.synthetic_skills import skill_names

V = grammar.VOCAB_SIZE


@pytest.fixture(scope="module")
def v3():
    return cl.load_corpus("synthetic-v3")


@pytest.fixture(scope="module")
def trained(v3):
    """A real tiny model trained on version 3 (about 10 s on two CPU cores)."""
    cfg = cl.ModelConfig(d_model=32, n_layer=2, n_head=2, seq_len=128)
    return cl.train(cfg, v3, flops=6e10, batch_size=4, progress=False)


# ---------------------------------------------------------------- the language, version 3
def test_version_3_scores_exactly_what_it_generates(v3):
    tokens, logp, _ = grammar.sample(v3.language, 800, 257, np.random.default_rng(4))
    nats = v3.score(tokens)
    np.testing.assert_allclose(nats, -logp, rtol=0, atol=1e-9)
    assert np.isfinite(nats).all()
    class_nats, word_nats = grammar.score_parts(v3.language, tokens)
    np.testing.assert_allclose(class_nats + word_nats, nats, rtol=0, atol=1e-12)
    rows = tokens[:300, :120]
    for cut in (1, 3, 40, 119):
        dist = v3.next_token_distribution(rows[:, :cut])
        np.testing.assert_allclose(dist.sum(1), 1.0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(dist[np.arange(300), rows[:, cut]], np.exp(-nats[:300, cut - 1]), rtol=1e-9)


def test_version_3_is_its_own_language_and_version_2_is_unchanged(v3, synthetic):
    assert v3.name == "synthetic-v3" and v3.vocab_size == V == 512
    assert synthetic.fingerprint == "0205ec2e324f1fae"  # every shipped run was trained on this one
    assert v3.fingerprint != synthetic.fingerprint and v3.fingerprint == SyntheticCorpus(version=3).fingerprint
    assert SyntheticCorpus(1, version=3).fingerprint != v3.fingerprint
    assert v3.language.pref_p.shape[0] == 3 * (512 + 1) + (176 + 1) + (72 + 1)  # 3 word-pair tables, 2 more


def test_version_3_streams_are_deterministic_and_disjoint(v3):
    a = torch.cat(list(itertools.islice(v3.train_batches(7, 128, seed=1), 15)))[:100]
    b = torch.cat(list(itertools.islice(cl.load_corpus("synthetic-v3").train_batches(50, 128, seed=1), 2)))[:100]
    assert torch.equal(a, b)
    val = {tuple(r) for r in v3.val_batch(300, 128).tolist()}
    assert len(val) == 300 and not val & {tuple(r) for r in a.tolist()}


def test_version_3_floor_and_its_error(v3):
    floor, se = v3.entropy_for(128)
    assert 2.7 < floor < 3.1 and 0 < se < 0.01
    _, logp, _ = grammar.sample(v3.language, 2000, 129, np.random.default_rng(98))
    row_means = -logp.mean(1)
    assert abs(row_means.mean() - floor) < 4 * np.hypot(se, row_means.std() / np.sqrt(2000))


def test_first_words_follow_the_zipfian_topic_prior(v3):
    """Chi-square at `<doc> the`: the first noun's distribution mixes the topics by their Zipf prior.

    With a uniform prior (version 2's) the same counts are rejected: the prior is really Zipfian."""
    lang = v3.language
    tokens = grammar.sample(lang, 300_000, 3, np.random.default_rng(6))[0]
    the = lang.words.index("the")
    after_the = tokens[tokens[:, 1] == the, 2]
    claimed = v3.next_token_distribution(np.array([[grammar.BOS, the]]))[0]
    observed = np.bincount(after_the, minlength=V)
    assert chi_square_p(observed, claimed * len(after_the)) > 1e-3
    # the same language with its topics mixed uniformly (version 2's prior) is rejected by the same counts
    flat = copy.copy(lang)
    flat.rules = dataclasses.replace(lang.rules, topic_prior=np.full(lang.rules.n_topics, 1 / lang.rules.n_topics))
    uniform = grammar.next_distribution(flat, np.array([[grammar.BOS, the]]))[0]
    assert uniform.sum() == pytest.approx(1.0, abs=1e-9)
    assert chi_square_p(observed, uniform * len(after_the)) < 1e-6


def test_words_lean_towards_the_favourites_of_the_token_before(v3):
    """Parsed independently: in `<doc> DET NOUN` the noun is one of the favourites of the determiner's
    word-pair row about as often as the rule's weight says (0.5, plus what the topic table puts there by
    chance); under another determiner's row, only by chance."""
    lang = v3.language
    cls, lemma = lang.tok_class, lang.tok_lemma
    tokens = grammar.sample(lang, 200_000, 3, np.random.default_rng(8))[0]
    det = np.isin(cls[tokens[:, 1]], (grammar.DET_SG, grammar.DET_PL, grammar.DET_ANY))
    rows = tokens[det & np.isin(cls[tokens[:, 2]], (grammar.NOUN_SG, grammar.NOUN_PL))]
    start = grammar.V3.rule_start[1]  # "previous word -> noun", one row per previous token id
    hits = lang.pref_p[start + rows[:, 1], lemma[rows[:, 2]]] > 0
    dets = np.flatnonzero(np.isin(cls, (grammar.DET_SG, grammar.DET_PL, grammar.DET_ANY)))
    other = dets[(np.searchsorted(dets, rows[:, 1]) + 1) % len(dets)]  # the next determiner's row
    control = lang.pref_p[start + other, lemma[rows[:, 2]]] > 0
    assert len(rows) > 50_000
    assert 0.5 < hits.mean() < 0.65 and control.mean() < 0.2, (hits.mean(), control.mean())


def test_verbs_agree_with_their_subjects_in_version_3(v3):
    """Parsed independently: in `<doc> DET NOUN VERB`, the verb's number is the noun's."""
    lang = v3.language
    cls = lang.tok_class
    tokens = grammar.sample(lang, 100_000, 4, np.random.default_rng(9))[0]
    verb = np.isin(cls[tokens[:, 3]], (grammar.VERB_SG, grammar.VERB_PL))
    noun = np.isin(cls[tokens[:, 2]], (grammar.NOUN_SG, grammar.NOUN_PL))
    rows = tokens[verb & noun]
    assert len(rows) > 10_000
    assert ((cls[rows[:, 2]] == grammar.NOUN_PL) == (cls[rows[:, 3]] == grammar.VERB_PL)).all()


def chi_square_p(observed, expected, min_expected=5.0):
    """p-value of Pearson's chi-square, cells with small expectation pooled into one."""
    big = expected >= min_expected
    obs = np.append(observed[big], observed[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    return scipy.stats.chisquare(obs[keep], exp[keep] * obs[keep].sum() / exp[keep].sum()).pvalue


# ---------------------------------------------------------------- the loss split by skill
def test_skill_split_sums_to_the_floor_and_the_loss_exactly(trained, v3):
    report = cl.loss_by_skill(trained, v3, n_sequences=256)
    rows = v3.val_batch(256, 128)
    assert report.floor == pytest.approx(v3.score(rows).mean(), abs=1e-12)
    assert report.model == pytest.approx(cl.evaluate_loss(trained.load_model(), v3, n_sequences=256), abs=2e-5)
    frame = report.frame
    assert frame.floor.sum() == pytest.approx(report.floor, abs=1e-9)
    assert frame.model.sum() == pytest.approx(report.model, abs=1e-9)
    for part in ("class", "word"):  # every token has one class part and one word part
        assert frame[frame.part == part].uses.sum() == report.positions == 256 * 128
    names = skill_names(v3.language.rules)
    assert set(frame.skill) <= set(names) and len(frame) == len(set(zip(frame.skill, frame.part)))
    assert {"grammar", "agreement", "nesting", "knowledge: previous word -> verb + subject -> verb",
            "knowledge: previous word -> noun + verb/preposition -> object noun"} <= set(frame.skill)
    assert abs(frame.excess.sum() - report.excess) < 1e-9


def test_every_skill_is_still_above_its_floor_on_a_trained_model(trained, v3):
    frame = cl.loss_by_skill(trained, v3, n_sequences=1024).frame
    assert (frame.model_per_use > frame.floor_per_use).all(), frame[["skill", "floor_per_use", "model_per_use"]]
    facts = frame[frame.skill.str.startswith("knowledge")]
    assert facts.excess.sum() > 0.05  # a 40K-parameter model after 6e10 FLOPs has not learned its word pairs


def test_split_of_the_exact_model_has_no_excess(v3):
    """Scored by the generator itself (a "model" whose logits are the exact log-probabilities), every
    skill's excess is zero: the split compares like with like."""
    class Exact(torch.nn.Module):
        config = type("C", (), {"vocab_size": V, "max_position_embeddings": 40})()

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids):
            dist = np.stack([v3.next_token_distribution(input_ids[:, :t + 1].numpy())
                             for t in range(input_ids.shape[1])], axis=1)
            with np.errstate(divide="ignore"):  # impossible tokens: log 0 = -inf, as a model may say
                return type("O", (), {"logits": torch.from_numpy(np.log(dist))})()

    report = cl.loss_by_skill(Exact(), v3, n_sequences=64)
    assert report.model == pytest.approx(report.floor, abs=1e-9)
    np.testing.assert_allclose(report.frame.excess, 0, atol=1e-9)


def test_loss_by_skill_refuses_what_it_cannot_split(trained, v3, synthetic):
    with pytest.raises(ValueError, match="corpus"):
        cl.loss_by_skill(trained, type("Text", (), {"vocab_size": 512, "fingerprint": "x"})())
    with pytest.raises(ValueError, match="model_or_run"):
        cl.loss_by_skill(trained, synthetic)  # trained on version 3, not version 2
    with pytest.raises(ValueError, match="model_or_run"):
        cl.loss_by_skill("a model", v3)
    with pytest.raises(ValueError, match="n_sequences"):
        cl.loss_by_skill(trained, v3, n_sequences=0)
    with pytest.raises(ValueError, match="version"):
        SyntheticCorpus(version=4)
