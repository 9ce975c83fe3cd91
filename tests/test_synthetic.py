"""The synthetic corpus: exact probabilities, calibrated sampling, deterministic disjoint streams, its floor."""
import itertools

import numpy as np
import pytest
import scipy.stats
import torch

from cot_lab.data import synthetic, synthetic_grammar as grammar
from cot_lab.data.synthetic import SyntheticCorpus

V = grammar.VOCAB_SIZE


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("cot_lab_home")
    mp.setenv("COT_LAB_HOME", str(path))
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def corpus():
    return SyntheticCorpus(language_seed=0)


def take_rows(corpus, n, seq_len, seed, batch_size):
    batches = corpus.train_batches(batch_size, seq_len, seed)
    return torch.cat(list(itertools.islice(batches, -(-n // batch_size))))[:n]


# ---------------------------------------------------------------- exact probabilities
def test_score_equals_generation_log_probs(corpus):
    tokens, logp, _ = grammar.sample(corpus.language, 600, 257, np.random.default_rng(3))
    assert ((tokens == grammar.BOS).sum(1) >= 2).mean() > 0.5  # most rows hold a cut-off second document
    nats = corpus.score(torch.from_numpy(tokens))
    assert nats.shape == (600, 256) and nats.dtype == np.float64
    np.testing.assert_allclose(nats, -logp, rtol=0, atol=1e-6)
    assert np.isfinite(nats).all() and (nats >= 0).all()


def test_distribution_sums_to_one_and_agrees_with_score(corpus):
    rows = corpus.val_batch(300, 160).numpy()
    nats = corpus.score(rows)
    for cut in (1, 2, 7, 50, 160):
        dist = corpus.next_token_distribution(rows[:, :cut])
        assert dist.shape == (300, V) and (dist >= 0).all()
        np.testing.assert_allclose(dist.sum(1), 1.0, rtol=0, atol=1e-9)
        np.testing.assert_allclose(dist[np.arange(300), rows[:, cut]], np.exp(-nats[:, cut - 1]), rtol=1e-9)


def test_impossible_token_scores_infinite(corpus):
    rows = np.array([[grammar.BOS, grammar.BOS], [grammar.BOS, corpus.language.words.index(".")]])
    assert np.isinf(corpus.score(rows)).all()  # an empty document; a sentence that ends before it starts


def test_first_tokens_follow_claimed_distribution(corpus):
    """Chi-square on exact contexts: the start of a document, and `<doc> the NOUN`, where the next
    verb depends on the topic posterior after one word and on the noun's favourite verbs."""
    lang = corpus.language
    tokens = grammar.sample(lang, 400_000, 4, np.random.default_rng(5))[0]
    first = corpus.next_token_distribution(tokens[:1, :1])[0]
    assert chi_square_p(np.bincount(tokens[:, 1], minlength=V), first * len(tokens)) > 1e-3
    # the most frequent topic-specific noun after "<doc> the"
    the = lang.words.index("the")
    noun_p = lang.word_p[grammar.NOUN_SG, :, : grammar.N_NOUN]  # [topic, noun]
    topical = noun_p.max(0) > 10 * noun_p.min(0)
    cand = tokens[(tokens[:, 1] == the) & (lang.tok_class[tokens[:, 2]] == grammar.NOUN_SG)]
    cand = cand[topical[lang.tok_lemma[cand[:, 2]]]]
    context = cand[cand[:, 2] == np.bincount(cand[:, 2]).argmax()]
    assert len(context) > 300
    claimed = corpus.next_token_distribution(context[:1, :3])[0]
    assert claimed[lang.tok_class == grammar.VERB_SG].sum() > 0.5
    assert chi_square_p(np.bincount(context[:, 3], minlength=V), claimed * len(context)) > 1e-3


def chi_square_p(observed, expected, min_expected=5.0):
    """p-value of Pearson's chi-square, cells with small expectation pooled into one."""
    assert observed[expected == 0].sum() == 0  # nothing the language calls impossible happened
    big = expected >= min_expected
    obs, exp = observed[big], expected[big]
    if expected[~big].sum() > 0:
        obs, exp = np.append(obs, observed[~big].sum()), np.append(exp, expected[~big].sum())
    return scipy.stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


def test_predictions_calibrated_given_history(corpus):
    """Over 8000 row ends, predicted mass matches observed counts within subsets defined by the history.

    A predictor that ignores the topic (z ~ +34 on topic words already seen in the document) or
    does not copy names (z ~ +80 on names already seen) fails this; the exact one must pass.
    Word pairs are checked too: the favourites of the previous adjective or verb.
    """
    rows = take_rows(corpus, 8000, 64, seed=11, batch_size=8000).numpy()
    prefix, nxt = rows[:, :-1], rows[:, -1]
    dist = corpus.next_token_distribution(prefix)
    hit = np.zeros_like(dist)
    hit[np.arange(len(rows)), nxt] = 1
    seen, closer = history_features(corpus, prefix)
    lang = corpus.language
    cls = lang.tok_class
    last = prefix[:, -1]
    favourite = np.zeros_like(seen)  # nouns an adjective prefers, prepositions a verb prefers
    for rule, before, after in ((0, [grammar.ADJ], [grammar.NOUN_SG, grammar.NOUN_PL]),
                                (3, [grammar.VERB_SG, grammar.VERB_PL], [grammar.PREP])):
        r = np.flatnonzero(np.isin(cls[last], before))
        row = lang.pref_p[grammar.RULE_START[rule] + lang.tok_lemma[last[r]]]
        favourite[r] = np.isin(cls, after)[None] & (row[:, lang.tok_lemma] > 0)
    groups = {
        "favourite of the previous word": favourite,
        "topic word seen in doc": seen & np.isin(cls, grammar.TOPIC_CLASSES),
        "topic word unseen": ~seen & np.isin(cls, grammar.TOPIC_CLASSES),
        "name seen in doc": seen & (cls == grammar.NAME),
        "name unseen": ~seen & (cls == grammar.NAME),
        "closer of innermost clause": closer,
        "everything else": ~np.isin(cls, grammar.TOPIC_CLASSES + (grammar.NAME, *grammar.CLOSER))[None] & (dist >= 0),
    }
    for name, mask in groups.items():
        expected, observed = dist[mask].sum(), hit[mask].sum()
        sd = np.sqrt((dist[mask] * (1 - dist[mask])).sum())
        assert expected > 50, name
        assert abs(observed - expected) < 4 * sd, (name, observed, expected, sd)
    wrong_closer = ~closer & np.isin(cls, grammar.CLOSER)  # impossible, and it never happens
    assert dist[wrong_closer].max() == 0 and hit[wrong_closer].sum() == 0
    assert hit[closer].sum() > 500


def history_features(corpus, prefix):
    """Per row and token: did it occur in the current document; is it the closer of the open clause."""
    words = corpus.language.words
    dot, comma, rparen = (words.index(w) for w in ".,)")
    opens = {words.index("that"): comma, words.index("("): rparen}
    seen = np.zeros((len(prefix), V), bool)
    closer = np.zeros((len(prefix), V), bool)
    for r, row in enumerate(prefix):
        doc = row[np.flatnonzero(row == grammar.BOS)[-1]:]
        seen[r, doc[1:]] = True
        stack = []
        for tok in doc:  # an independent little parser: sentence ends reset, openers push, closers pop
            if tok in opens:
                stack.append(opens[tok])
            elif tok in (comma, rparen) and stack:
                stack.pop()
            elif tok == dot:
                stack = []
        closer[r, stack[-1] if stack else dot] = True
    return seen, closer


def test_verbs_agree_with_and_suit_their_subjects(corpus):
    """Parsed independently: a verb agrees in number with its clause's subject (the first noun or
    name of a sentence or bracket; for a relative clause, the noun before "that"), across clauses
    and brackets in between. Verbs are among the subject's favourites and object nouns among
    their verb's or preposition's favourites as often as the mixture weight says."""
    lang = corpus.language
    cls, lemma, words = lang.tok_class, lang.tok_lemma, lang.words
    nominal = {grammar.NOUN_SG: 0, grammar.NOUN_PL: 1, grammar.NAME: 0}  # -> plural?
    fav = {"verb": [], "verb after a clause": [], "object": []}
    for row in corpus.val_batch(300, 512).numpy():
        stack = []  # per open clause: [subject number, subject id, verb seen, a sub-clause closed]
        for tok in row:
            c, w = cls[tok], words[tok]
            if w in ("<doc>", "."):
                stack = [[None, None, False, False]]
            elif w == "that":
                stack.append([*last_np, False, False])
            elif w == "(":
                stack.append([None, None, False, False])
            elif w in (",", ")"):
                stack.pop()
                stack[-1][3] = True
            elif c in nominal:
                last_np = (nominal[c], lemma[tok] + grammar.N_NOUN * (c == grammar.NAME))
                if stack[-1][0] is None:
                    stack[-1][:2] = last_np
                elif stack[-1][2] and c != grammar.NAME:  # an object noun
                    fav["object"].append(pref(lang, 1, governor, lemma[tok]))
            elif c in (grammar.VERB_SG, grammar.VERB_PL):
                number, agent, verb_seen, after_clause = stack[-1]
                assert (c == grammar.VERB_PL) == number and not verb_seen
                fav["verb after a clause" if after_clause else "verb"].append(pref(lang, 2, agent, lemma[tok]))
                stack[-1][2] = True
                governor = lemma[tok]
            elif c == grammar.PREP:
                governor = grammar.N_VERB + lemma[tok]
    for kind, hits in fav.items():
        assert len(hits) > 1000 and 0.5 < np.mean(hits) < 0.7, (kind, len(hits), np.mean(hits))


def test_names_are_new_or_copied_as_claimed(corpus):
    """Parsed independently: a name slot introduces a new entity with probability NEW_NAME_P[m]
    (m entities so far in the document), else re-mentions one of the m uniformly."""
    lang = corpus.language
    new_by_m, picks_of_3 = np.zeros((2, len(grammar.NEW_NAME_P))), np.zeros((2, 3))
    for row in take_rows(corpus, 2000, 256, seed=7, batch_size=500).numpy():
        entities = []
        for tok in row:
            if tok == grammar.BOS:
                entities = []
            elif lang.tok_class[tok] == grammar.NAME:
                m, is_new = len(entities), tok not in entities
                new_by_m[:, m] += (is_new, 1)
                if is_new:
                    entities.append(tok)
                elif m == 3:  # which one: in order of introduction, and in order of token id
                    picks_of_3[0, entities.index(tok)] += 1
                    picks_of_3[1, sorted(entities).index(tok)] += 1
    rate, claimed = new_by_m[0] / new_by_m[1], grammar.NEW_NAME_P
    se = np.sqrt(claimed * (1 - claimed) / new_by_m[1])
    assert (new_by_m[1] > 1000).all()
    assert (np.abs(rate - claimed) <= 4 * se + 1e-12).all(), (rate, claimed, se)
    assert (scipy.stats.chisquare(picks_of_3, axis=1).pvalue > 1e-3).all() and picks_of_3.sum() > 2000


def pref(lang, rule, context, target):
    """Is `target` one of the favourites in row `context` of preference table `rule`?"""
    return lang.pref_p[grammar.RULE_START[rule] + context, target] > 0


# ---------------------------------------------------------------- rows and streams
def test_shapes_dtypes_and_documents(corpus):
    batch = next(corpus.train_batches(4, 2048, seed=0))
    assert batch.dtype == torch.int64 and batch.shape == (4, 2049)
    assert (batch[:, 0] == grammar.BOS).all() and batch.min() >= 0 and batch.max() < corpus.vocab_size
    rows = batch.numpy()
    lengths = np.concatenate([np.diff(np.flatnonzero(r == grammar.BOS)) for r in rows])
    assert 40 <= lengths.mean() <= 250 and lengths.min() >= 10 and lengths.max() <= 420
    val = corpus.val_batch(5, 64)
    assert val.dtype == torch.int64 and val.shape == (5, 65) and (val[:, 0] == grammar.BOS).all()
    assert corpus.vocab_size == 512 and corpus.name == "synthetic"


def test_rows_deterministic_and_independent_of_batch_size(corpus, monkeypatch):
    monkeypatch.setattr(synthetic, "CHUNK_TOKENS", 2000)  # 15 rows per chunk: batches straddle chunks
    a = take_rows(corpus, 100, 128, seed=1, batch_size=7)
    b = take_rows(corpus, 100, 128, seed=1, batch_size=32)
    c = take_rows(SyntheticCorpus(0), 100, 128, seed=1, batch_size=1)
    assert torch.equal(a, b) and torch.equal(a, c)
    other = take_rows(corpus, 100, 128, seed=2, batch_size=7)
    assert (a != other).any(1).all()
    assert (take_rows(SyntheticCorpus(1), 100, 128, seed=1, batch_size=7) != a).any(1).all()


def test_val_fixed_and_disjoint_from_train(corpus):
    val = corpus.val_batch(400, 128)
    assert torch.equal(val, corpus.val_batch(400, 128)) and torch.equal(corpus.val_batch(40, 128), val[:40])
    val_rows = {tuple(r) for r in val.tolist()}
    for seed in range(4):
        train = take_rows(corpus, 400, 128, seed=seed, batch_size=64)
        assert not val_rows & {tuple(r) for r in train.tolist()}
    assert len(val_rows) == 400


def test_fingerprint_and_decode(corpus):
    assert corpus.fingerprint == SyntheticCorpus(0).fingerprint != SyntheticCorpus(1).fingerprint
    assert len(corpus.fingerprint) == 16 and int(corpus.fingerprint, 16) >= 0
    words = corpus.language.words
    assert len(set(words)) == V and words[grammar.BOS] == "<doc>" and "the" in words
    text = corpus.decode(corpus.val_batch(2, 40).reshape(-1))
    assert text.startswith("<doc> ") and text.count("\n<doc>") >= 1 and len(text.split()) == 82
    assert "Topic" in corpus.describe() and corpus.fingerprint in corpus.describe()


# ---------------------------------------------------------------- the floor and the gaps above it
def test_entropy_value_se_and_cache(corpus, home, monkeypatch):
    mean, se = corpus.entropy, corpus.entropy_se
    assert 2.95 < mean < 3.15 and 0 < se < 0.01
    # an independent sample's generation-time log-probs agree with the estimate
    _, logp, _ = grammar.sample(corpus.language, 2000, 129, np.random.default_rng(99))
    row_means = -logp.mean(1)
    assert abs(row_means.mean() - mean) < 4 * np.hypot(se, row_means.std() / np.sqrt(2000))
    assert (home / "synthetic" / "entropy.json").exists()
    monkeypatch.setattr(grammar, "score", lambda *a, **k: pytest.fail("recomputed instead of cached"))
    assert SyntheticCorpus(0).entropy_for(128) == (mean, se)
    assert SyntheticCorpus.DEFAULT_SEQ_LEN == 128


def test_longer_context_lowers_the_floor(corpus):
    short, short_se = corpus.entropy_for(16)
    long, long_se = corpus.entropy_for(512)
    assert short - long > 0.1 > 5 * np.hypot(short_se, long_se)  # early tokens of a document are harder


def test_count_models_sit_far_above_floor(corpus):
    train = take_rows(corpus, 2_000_000 // 128 + 1, 128, seed=0, batch_size=4096).numpy()
    val = corpus.val_batch(4000, 128).numpy()
    floor = corpus.score(val).mean()
    uni = np.bincount(train[:, 1:].ravel(), minlength=V) + 0.5
    uni /= uni.sum()
    pairs = np.bincount((train[:, :-1] * V + train[:, 1:]).ravel(), minlength=V * V).reshape(V, V) + 0.0
    prev, nxt = val[:, :-1], val[:, 1:]
    bigram = min(-np.log((pairs[prev, nxt] + a * uni[nxt]) / (pairs.sum(1)[prev] + a)).mean() for a in (1, 10, 100))
    unigram = -np.log(uni[nxt]).mean()
    assert unigram - floor >= 1.0
    assert bigram - floor >= 0.5


def test_layer_report(corpus):
    r = corpus.layer_report(seq_len=128, train_tokens=500_000)
    assert abs(r["floor"] - corpus.entropy) < 1e-9  # same validation rows as the entropy estimate
    assert 0.01 < r["floor"] - r["topic_known"] < 0.1  # the price of inferring the topic
    for layer, at_least in (("topic", 0.15), ("knowledge", 0.15), ("copy", 0.08), ("agreement", 0.05),
                            ("nesting", 0.05)):
        assert r[f"no_{layer}"] - r["floor"] > at_least, layer
    assert r["unigram"] > r["bigram"] > max(r[f"no_{layer}"] for layer in grammar.ABLATIONS)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, arg", [
    (lambda c: SyntheticCorpus(language_seed=-1), "language_seed"),
    (lambda c: SyntheticCorpus(language_seed=1.5), "language_seed"),
    (lambda c: c.train_batches(0, 128, 0), "batch_size"),
    (lambda c: c.train_batches(4, -1, 0), "seq_len"),
    (lambda c: c.train_batches(4, 0, 0), "seq_len"),
    (lambda c: c.train_batches(4, 128, -3), "seed"),
    (lambda c: c.train_batches(True, 128, 0), "batch_size"),
    (lambda c: c.val_batch(0, 128), "n_sequences"),
    (lambda c: c.val_batch(8, 10**9), "seq_len"),
    (lambda c: c.entropy_for(0), "seq_len"),
    (lambda c: c.score(np.ones((2, 5), np.int64)), "rows"),
    (lambda c: c.score(np.zeros((2, 5), np.float32)), "rows"),
    (lambda c: c.score(np.full((2, 5), 600)), "rows"),
    (lambda c: c.next_token_distribution(np.zeros(5, np.int64)), "prefix_rows"),
    (lambda c: c.decode([0, 512]), "ids"),
])
def test_bad_arguments_raise_value_error_naming_them(corpus, call, arg):
    with pytest.raises(ValueError, match=arg):
        call(corpus)


def test_encode_is_decode_reversed_and_refuses_foreign_words():
    corpus = SyntheticCorpus(version=3)
    rows = corpus.val_batch(8, 64)
    for row in rows:
        assert corpus.encode(corpus.decode(row)) == row.tolist()
    with pytest.raises(ValueError, match="does not have, e.g. \\['hello'"):
        corpus.encode("hello " + corpus.decode(rows[0][:4]))
    with pytest.raises(ValueError, match="text must be a string"):
        corpus.encode(rows[0])
