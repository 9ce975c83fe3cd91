"""Membership inference: exact ROC AUC, Min-K% Prob, token log-probs, and a real memorisation experiment.

Every expected value is derived here independently of cot_lab.evaluation.membership: the AUC by counting
all (member, non-member) pairs, Min-K% Prob by hand, the log-probs by log_softmax on the model's logits.
The experiment trains a tiny model with cl.train on documents of uniform random tokens: a small set
repeated ~50 times, interleaved with a stream of fresh documents each seen once; the non-members (the
validation split) come from the same distribution. Repeated members must be told apart (AUC > 0.9);
members seen once, and any set under an untrained model, must sit within 3 chance standard errors of 0.5.
"""
import hashlib
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cot_lab as cl
from cot_lab.data.base import Corpus
from cot_lab.evaluation import (MembershipReport, chance_se, document_losses, loss_score, membership_report,
                                min_k_prob, roc_auc, token_logprobs)

TINY = cl.ModelConfig(d_model=32, n_layer=1, n_head=2, vocab_size=64, seq_len=16)


def pairwise_auc(pos, neg) -> float:
    """The AUC by definition: over all m x n pairs, 1 when the member scores higher, 1/2 on a tie."""
    pos, neg = np.asarray(pos, float)[:, None], np.asarray(neg, float)[None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


# ---- roc_auc ---------------------------------------------------------------------------------------------

def test_roc_auc_equals_the_pairwise_count_on_random_scores_with_ties():
    rng = np.random.default_rng(7)
    for m, n, levels in ((1, 1, 2), (5, 9, 3), (40, 17, 6), (200, 300, 10), (64, 64, 1000)):
        pos, neg = rng.integers(0, levels, m), rng.integers(0, levels, n)  # few levels: many ties
        assert roc_auc(pos, neg) == pytest.approx(pairwise_auc(pos, neg), abs=1e-15), (m, n, levels)
        assert roc_auc(pos, neg) + roc_auc(neg, pos) == pytest.approx(1.0, abs=1e-15)
        # exact: 2 U is an integer, so the AUC is a multiple of 1 / (2 m n)
        twice_u = roc_auc(pos, neg) * 2 * m * n
        assert abs(twice_u - round(twice_u)) < 1e-9
    pos, neg = rng.normal(0.3, 1, 500), rng.normal(0, 1, 400)  # continuous scores, no ties
    assert roc_auc(pos, neg) == pytest.approx(pairwise_auc(pos, neg), abs=1e-15)


def test_roc_auc_known_cases():
    assert roc_auc([3, 4, 5], [0, 1, 2]) == 1.0          # every member above every non-member
    assert roc_auc([0, 1, 2], [3, 4, 5]) == 0.0          # reversed
    assert roc_auc([1, 1, 1], [1, 1]) == 0.5             # all tied
    assert roc_auc([2.0, 0.0], [1.0]) == 0.5             # one pair above, one below
    assert roc_auc([1.0, 2.0], [1.0]) == 0.75            # one tie (1/2) and one above (1), over 2 pairs
    assert roc_auc(torch.tensor([0.2, 0.9]), np.array([0.1])) == 1.0  # tensors and arrays alike


def test_chance_se_is_the_null_spread_of_the_auc():
    """sqrt((m+n+1)/(12 m n)): checked against the spread of the AUC of pure-noise scores."""
    assert chance_se(32, 32) == pytest.approx(math.sqrt(65 / (12 * 32 * 32)))
    rng = np.random.default_rng(0)
    aucs = [roc_auc(rng.normal(size=20), rng.normal(size=30)) for _ in range(4000)]
    assert np.std(aucs) == pytest.approx(chance_se(20, 30), rel=0.05)
    assert np.mean(aucs) == pytest.approx(0.5, abs=3 * chance_se(20, 30) / math.sqrt(4000))


def test_the_summary_says_above_near_or_below_chance():
    se = chance_se(32, 32)
    scores = dict(member_loss=np.zeros(32), nonmember_loss=np.zeros(32), member_min_k=np.zeros(32),
                  nonmember_min_k=np.zeros(32))

    def report(loss_auc, min_k_auc):
        return MembershipReport(k=0.2, n_members=32, n_nonmembers=32, loss_auc=loss_auc, min_k_auc=min_k_auc,
                                chance_se=se, **scores)

    assert report(0.5 + 2.1 * se, 0.5).summary().endswith("tells its members apart by loss.")
    assert "no evidence that the model saw these members" in report(0.5 + 1.9 * se, 0.5 - 1.9 * se).summary()
    assert report(0.5 + 1.9 * se, 0.5 - 1.9 * se).frame()["near_chance"].all()
    assert "below chance" in report(0.5 - 2.1 * se, 0.5).summary()
    assert report(0.97, 0.5).frame().loc["loss", "z"] == pytest.approx(0.47 / se)


# ---- min_k_prob and loss_score --------------------------------------------------------------------------

def test_min_k_prob_by_hand():
    lp = np.array([[-1.0, -5.0, -2.0, -3.0, -4.0],
                   [-0.5, -0.1, -0.2, -0.3, -9.0]])
    np.testing.assert_allclose(min_k_prob(lp, k=0.4), [(-5 - 4) / 2, (-9 - 0.5) / 2])  # floor(0.4 * 5) = 2 tokens
    np.testing.assert_allclose(min_k_prob(lp, k=0.2), [-5.0, -9.0])                    # 1 token: the minimum
    np.testing.assert_allclose(min_k_prob(lp, k=0.1), [-5.0, -9.0])                    # floor(0.5) = 0 -> at least 1
    np.testing.assert_allclose(min_k_prob(lp, k=1.0), [-3.0, -10.1 / 5])               # all: the mean
    np.testing.assert_allclose(min_k_prob(lp, k=1.0), loss_score(lp))
    np.testing.assert_allclose(loss_score(lp), [-15 / 5, -10.1 / 5])
    # 29 of 100 tokens, though 0.29 * 100 is 28.999... in floating point: the lowest are -100 .. -72
    shuffled = -np.random.default_rng(1).permutation(np.arange(1.0, 101.0))[None, :]
    np.testing.assert_allclose(min_k_prob(shuffled, k=0.29), [-(100 + 72) / 2])
    np.testing.assert_allclose(min_k_prob(shuffled), [-(100 + 81) / 2])                  # default k = 0.2: 20 tokens


def test_token_logprobs_by_log_softmax_and_against_document_losses():
    model = cl.build_model(TINY, seed=0)
    rows = torch.randint(0, TINY.vocab_size, (5, TINY.seq_len + 1), generator=torch.Generator().manual_seed(3))
    got = token_logprobs(model, rows, batch_size=2)
    assert got.dtype == np.float64 and got.shape == (5, TINY.seq_len)
    model.eval()
    with torch.no_grad():
        logp = F.log_softmax(model(input_ids=rows[:, :-1]).logits.double(), dim=-1)
    want = logp.gather(2, rows[:, 1:, None])[..., 0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got < 0).all()
    np.testing.assert_allclose(loss_score(got), -document_losses(model, rows), atol=1e-6)
    assert got.mean() == pytest.approx(-document_losses(model, rows).mean(), abs=1e-6)
    np.testing.assert_allclose(token_logprobs(model, rows.numpy().tolist()), got)  # lists of ids too


# ---- bad input --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.2"])
def test_k_outside_0_1_is_refused_naming_k_and_the_range(k):
    lp = -np.ones((2, 4))
    with pytest.raises(ValueError, match=r"k=.*\(0, 1\]"):
        min_k_prob(lp, k=k)
    with pytest.raises(ValueError, match=r"k=.*\(0, 1\]"):
        membership_report(cl.build_model(TINY, seed=0), np.zeros((2, 5), int), np.zeros((2, 5), int), k=k)


def test_empty_sets_and_bad_rows_are_refused_naming_the_argument():
    model = cl.build_model(TINY, seed=0)
    rows = np.zeros((3, 9), dtype=np.int64)
    with pytest.raises(ValueError, match="members is empty"):
        membership_report(model, [], rows)
    with pytest.raises(ValueError, match="nonmembers is empty"):
        membership_report(model, rows, np.zeros((0, 9), dtype=np.int64))
    with pytest.raises(ValueError, match="member_scores must be a non-empty"):
        roc_auc([], [1.0])
    with pytest.raises(ValueError, match="nonmember_scores must be a non-empty"):
        roc_auc([1.0], np.array([]))
    with pytest.raises(ValueError, match="nonmember_scores holds non-finite"):
        roc_auc([1.0], [float("nan")])
    with pytest.raises(ValueError, match="logprobs must be a 2-D array"):
        min_k_prob(np.zeros(4))
    with pytest.raises(ValueError, match="rows holds token ids from 64 to 64, outside the model.s vocabulary 0..63"):
        token_logprobs(model, np.full((2, 5), 64))
    with pytest.raises(ValueError, match="rows must be int token rows"):
        token_logprobs(model, np.zeros((2, 5)))                      # floats are not token ids
    with pytest.raises(ValueError, match="at most the model's context"):
        token_logprobs(model, np.zeros((2, TINY.seq_len + 2), int))
    with pytest.raises(ValueError, match="model_or_run=str must be a model"):
        token_logprobs("model.pt", rows)


# ---- a real memorisation experiment -----------------------------------------------------------------------

class RepeatedDocuments(Corpus):
    """Train split: the `repeated` documents, reshuffled every epoch, alternating row by row with a stream of
    fresh documents (seeded, each used once); validation split: `held_out` (the non-members)."""

    def __init__(self, repeated, held_out, vocab_size: int, fresh_seed: int = 1):
        self.name, self.vocab_size, self.fresh_seed = "membership-test", vocab_size, fresh_seed
        self.repeated, self.held_out = torch.as_tensor(repeated), torch.as_tensor(held_out)
        data = self.repeated.numpy().tobytes() + self.held_out.numpy().tobytes() + bytes([fresh_seed])
        self.fingerprint = hashlib.sha256(data).hexdigest()[:16]

    def fresh(self, n: int) -> torch.Tensor:
        """The first n fresh documents of the train stream (row 2j + 1 of the stream is fresh(.)[j])."""
        width = self.repeated.shape[1]
        return torch.as_tensor(np.random.default_rng(self.fresh_seed).integers(0, self.vocab_size, (n, width)))

    def train_batches(self, batch_size, seq_len, seed):
        assert seq_len + 1 == self.repeated.shape[1]
        order = torch.Generator().manual_seed(seed)

        def stream():
            fresh, j = self.fresh(1 << 16), 0
            while True:
                for row in self.repeated[torch.randperm(len(self.repeated), generator=order)]:
                    yield row
                    yield fresh[j]
                    j += 1

        rows = stream()
        while True:
            yield torch.stack([next(rows) for _ in range(batch_size)])

    def val_batch(self, n_sequences, seq_len):
        assert seq_len + 1 == self.held_out.shape[1]
        return self.held_out[torch.arange(n_sequences) % len(self.held_out)]


N_DOCS, STEPS, BATCH = 32, 200, 16   # 200 x 16 rows: each repeated document seen 50 times, 1600 fresh ones once


@pytest.fixture(scope="module")
def experiment():
    rng = np.random.default_rng(0)
    docs = rng.integers(0, TINY.vocab_size, size=(2 * N_DOCS, TINY.seq_len + 1))  # uniform: log 64 nats/token
    members, nonmembers = docs[:N_DOCS], docs[N_DOCS:]
    corpus = RepeatedDocuments(members, nonmembers, TINY.vocab_size)
    run = cl.train(TINY, corpus, tokens=STEPS * BATCH * TINY.seq_len, batch_size=BATCH, lr=1e-2, seed=0,
                   eval_sequences=N_DOCS, progress=False, compile=False)
    assert run.status == "ok"
    n_fresh = STEPS * BATCH // 2
    seen_once = corpus.fresh(n_fresh)[np.linspace(0, n_fresh - 1, N_DOCS).astype(int)]  # spread over training
    return run, members, seen_once, nonmembers


def test_documents_seen_many_times_are_told_apart(experiment):
    run, members, _, nonmembers = experiment
    report = membership_report(run, members, nonmembers)
    assert isinstance(report, MembershipReport) and report.n_members == report.n_nonmembers == N_DOCS
    assert report.loss_auc > 0.9 and report.min_k_auc > 0.9, report.frame()
    # the report's AUCs are the pairwise count over its own scores, and its scores the functions' values
    lp_members = token_logprobs(run, members)
    np.testing.assert_allclose(report.member_min_k, min_k_prob(lp_members, 0.2))
    np.testing.assert_allclose(report.member_loss, -document_losses(run, members), atol=1e-6)
    assert report.loss_auc == pairwise_auc(report.member_loss, report.nonmember_loss)
    assert report.min_k_auc == pairwise_auc(report.member_min_k, report.nonmember_min_k)
    frame = report.frame()
    assert list(frame.index) == ["loss", "min-k% prob"]
    assert frame.loc["loss", "auc"] == report.loss_auc and not frame["near_chance"].any()
    assert frame.loc["loss", "member_mean"] > frame.loc["loss", "nonmember_mean"]
    assert "tells its members apart by loss and min-k% prob" in report.summary()


def test_documents_seen_once_are_near_chance_as_mimir_found(experiment):
    """Members seen once, in a stream of the same distribution as the non-members: within 3 standard errors."""
    run, _, seen_once, nonmembers = experiment
    report = membership_report(run, seen_once, nonmembers)
    margin = 3 * chance_se(N_DOCS, N_DOCS)  # 3 x 0.073
    assert abs(report.loss_auc - 0.5) < margin and abs(report.min_k_auc - 0.5) < margin, report.frame()


def test_an_untrained_model_is_near_chance():
    rng = np.random.default_rng(0)
    docs = rng.integers(0, TINY.vocab_size, size=(2 * N_DOCS, TINY.seq_len + 1))
    report = membership_report(cl.build_model(TINY, seed=0), docs[:N_DOCS], docs[N_DOCS:], k=0.2)
    margin = 3 * report.chance_se
    assert report.chance_se == pytest.approx(math.sqrt((2 * N_DOCS + 1) / (12 * N_DOCS ** 2)))
    assert abs(report.loss_auc - 0.5) < margin and abs(report.min_k_auc - 0.5) < margin, report.frame()
