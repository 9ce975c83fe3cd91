"""Membership inference: was this document in the training data? Two scores from the model's own log-probabilities.

For a document x_0..x_T, token_logprobs gives log p(x_t | x_<t) for t = 1..T (the kit's next-token loss,
negated: the same forward pass as `cl.evaluate_loss` and `document_losses`). Two scores, higher meaning
"more likely a member":
    loss score       (1/T) sum_t log p(x_t | x_<t) = -(the document's mean loss): the loss-threshold attack of
                     Yeom et al. 2018 ("Privacy Risk in Machine Learning: Analyzing the Connection to
                     Overfitting", CSF 2018), a model's loss being lower on what it trained on.
    Min-K% Prob      the mean of the lowest k fraction of a document's token log-probs (Shi et al. 2023,
                     "Detecting Pretraining Data from Large Language Models", arXiv 2310.16789, Sec. 3): an
                     unseen document tends to hold a few outlier tokens of very low probability, a seen one
                     fewer. k = 0.2 is their usual choice; k = 1 is the loss score. The number of tokens kept
                     is floor(k T), as in their code, but at least one.
A score is judged by its ROC AUC over a set of members and a set of non-members: the chance that a random
member scores above a random non-member, ties counting one half (the Mann-Whitney U statistic over m n;
Hanley & McNeil 1982, Radiology 143:29). 0.5 is chance, 1.0 a perfect separation. With no real signal,
the AUC of m members against n non-members scatters around 0.5 with standard error
sqrt((m + n + 1) / (12 m n)) (the null variance of U; `chance_se`), so a small AUC away from 0.5 can be
noise: the report gives that scale next to each AUC.

What to expect, honestly: documents seen many times (planted copies, a small set trained for many epochs)
are told apart almost perfectly. Documents seen once or a few times, against non-members from the *same*
distribution, are near chance: MIMIR (Duan et al. 2024, "Do Membership Inference Attacks Work on Large
Language Models?", arXiv 2402.07841) found loss and Min-K% Prob AUCs barely above 0.5 on the Pile's own
train/test split, and traced the higher AUCs reported elsewhere to a shift between the member and non-member
sets (a later date, another source): the attack then detects the distribution, not the membership.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.core.evaluate import sequence_losses
from cot_lab.evaluation.inputs import model_of, token_rows


DEFAULT_K = 0.2  # Shi et al. 2023 report k = 20% as a good default
SCORES = ("loss", "min-k% prob")


def token_logprobs(model_or_run, rows, *, batch_size: int = 32) -> np.ndarray:
    """log p(rows[i, t+1] | rows[i, :t+1]) for every row i and position t: float64 [n, T] for token rows [n, T+1].

    The kit's next-token loss negated (cot_lab.core.evaluate.sequence_losses: fp32, eval mode, no gradients),
    so each row's mean is minus `document_losses` of that row. model_or_run: a model or a cl.Run.
    """
    model = model_of(model_or_run)
    batch_size = validate.integer("batch_size", batch_size, hint="rows scored at once, e.g. 32")
    rows = token_rows("rows", rows, model)
    return -sequence_losses(model, rows, batch_size=batch_size).double().numpy()


def min_k_prob(logprobs, k: float = DEFAULT_K) -> np.ndarray:
    """Min-K% Prob (Shi et al. 2023, arXiv 2310.16789): per document, the mean of its lowest k fraction of token
    log-probs; float64 [n] for log-probs [n, T] (token_logprobs). max(1, floor(k T)) tokens are kept."""
    k = _k(k)
    lp = _logprobs(logprobs)
    keep = max(1, int(math.floor(k * lp.shape[1] + 1e-9)))  # the 1e-9: 0.29 * 100 is 28.999... in floats
    return np.sort(lp, axis=1)[:, :keep].mean(axis=1)


def loss_score(logprobs) -> np.ndarray:
    """The loss-threshold score (Yeom et al. 2018): per document, the mean token log-prob, i.e. minus its mean
    loss in nats/token; float64 [n] for log-probs [n, T]. Higher: more likely a member."""
    return _logprobs(logprobs).mean(axis=1)


def roc_auc(member_scores, nonmember_scores) -> float:
    """Exact ROC AUC of a score that should be higher for members: U / (m n), where U counts the (member,
    non-member) pairs with the member above, ties counting 1/2 (Mann-Whitney). 1.0: perfect; 0.5: chance."""
    pos = _scores("member_scores", member_scores)
    neg = np.sort(_scores("nonmember_scores", nonmember_scores))
    below = np.searchsorted(neg, pos, side="left")            # non-members strictly below each member
    tied = np.searchsorted(neg, pos, side="right") - below    # non-members equal to it
    u2 = 2 * int(below.sum()) + int(tied.sum())               # 2U, an exact integer
    return u2 / (2 * pos.size * neg.size)


def chance_se(n_members: int, n_nonmembers: int) -> float:
    """The standard error of the AUC of a score with no signal (continuous, untied): sqrt((m+n+1) / (12 m n))."""
    m = validate.integer("n_members", n_members)
    n = validate.integer("n_nonmembers", n_nonmembers)
    return math.sqrt((m + n + 1) / (12.0 * m * n))


@dataclass(frozen=True)
class MembershipReport:
    """How well the loss score and Min-K% Prob tell members from non-members, as ROC AUCs (see the module)."""
    k: float
    n_members: int
    n_nonmembers: int
    loss_auc: float
    min_k_auc: float
    chance_se: float                 # the AUC's standard error with no signal: 0.5 +- 2 chance_se is "near chance"
    member_loss: np.ndarray          # the scores, float64 [n_members] and [n_nonmembers]
    nonmember_loss: np.ndarray
    member_min_k: np.ndarray
    nonmember_min_k: np.ndarray

    def auc(self, score: str) -> float:
        """The AUC of one score: "loss" or "min-k% prob"."""
        return {"loss": self.loss_auc, "min-k% prob": self.min_k_auc}[validate.one_of("score", score, SCORES)]

    def near_chance(self, score: str, *, z: float = 2.0) -> bool:
        """True when the score's AUC is within z chance standard errors of 0.5: no evidence of membership."""
        return abs(self.auc(score) - 0.5) <= z * self.chance_se

    def frame(self):
        """A pandas DataFrame, one row per score (index: score): auc, chance_se, z = (auc - 0.5) / chance_se,
        the mean score of members and of non-members, and whether the AUC is near chance (|z| <= 2)."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        pairs = {"loss": (self.loss_auc, self.member_loss, self.nonmember_loss),
                 "min-k% prob": (self.min_k_auc, self.member_min_k, self.nonmember_min_k)}
        rows = [{"auc": auc, "chance_se": self.chance_se, "z": (auc - 0.5) / self.chance_se,
                 "member_mean": float(mem.mean()), "nonmember_mean": float(non.mean()),
                 "near_chance": self.near_chance(name)} for name, (auc, mem, non) in pairs.items()]
        return pd.DataFrame(rows, index=pd.Index(list(pairs), name="score"))

    def summary(self) -> str:
        """One sentence on both AUCs: above chance (by more than 2 chance standard errors), near it, or below it."""
        said = (f"loss AUC {self.loss_auc:.3f}, Min-{self.k:.0%} Prob AUC {self.min_k_auc:.3f} over "
                f"{self.n_members} members and {self.n_nonmembers} non-members (chance 0.5 +- {self.chance_se:.3f})")
        above = [name for name in SCORES if self.auc(name) - 0.5 > 2 * self.chance_se]
        if above:
            return f"{said}: the model tells its members apart by {' and '.join(above)}."
        if self.near_chance("loss") and self.near_chance("min-k% prob"):
            return (f"{said}: both within 2 standard errors of chance, no evidence that the model saw these "
                    "members (as MIMIR found for members seen once or a few times, against non-members of the "
                    "same distribution).")
        return (f"{said}: the members score below chance, less likely than the non-members; check which set is "
                "which, or whether the non-members are easier text.")


def membership_report(model_or_run, members, nonmembers, k: float = DEFAULT_K, *,
                      batch_size: int = 32) -> MembershipReport:
    """Score members and non-members (token rows [n, T+1] each; T may differ between the two) with the loss
    score and Min-K% Prob, and report each score's ROC AUC. The arguments are checked before the model runs."""
    k = _k(k)
    model = model_of(model_or_run)
    batch_size = validate.integer("batch_size", batch_size, hint="rows scored at once, e.g. 32")
    mem_rows, non_rows = token_rows("members", members, model), token_rows("nonmembers", nonmembers, model)
    mem = token_logprobs(model, mem_rows, batch_size=batch_size)
    non = token_logprobs(model, non_rows, batch_size=batch_size)
    scores = {"member_loss": loss_score(mem), "nonmember_loss": loss_score(non),
              "member_min_k": min_k_prob(mem, k), "nonmember_min_k": min_k_prob(non, k)}
    return MembershipReport(k=k, n_members=mem.shape[0], n_nonmembers=non.shape[0],
                            loss_auc=roc_auc(scores["member_loss"], scores["nonmember_loss"]),
                            min_k_auc=roc_auc(scores["member_min_k"], scores["nonmember_min_k"]),
                            chance_se=chance_se(mem.shape[0], non.shape[0]), **scores)


def _k(k) -> float:
    return validate.number("k", k, low=0.0, high=1.0,
                           hint=f"the fraction of lowest-probability tokens averaged, e.g. {DEFAULT_K} (Shi et al.); "
                                "1 averages them all (the loss score)")


def _logprobs(logprobs) -> np.ndarray:
    if isinstance(logprobs, torch.Tensor):
        logprobs = logprobs.detach().cpu().double().numpy()
    try:
        lp = np.asarray(logprobs, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"logprobs must be token log-probs [n, T] (token_logprobs); got {type(logprobs).__name__}") \
            from None
    if lp.ndim != 2 or lp.shape[0] < 1 or lp.shape[1] < 1:
        raise ValueError(f"logprobs must be a 2-D array [n documents >= 1, T tokens >= 1] of log-probs "
                         f"(token_logprobs(model, rows)); got shape {lp.shape}")
    if not np.all(np.isfinite(lp) & (lp <= 0)):
        raise ValueError("logprobs must hold finite log-probabilities (<= 0); a diverged model scores NaN")
    return lp


def _scores(name: str, scores) -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu().double().numpy()
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 1-D array of scores (higher: more likely a member); got "
                         f"{type(scores).__name__}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of scores, one per document (e.g. "
                         f"loss_score(logprobs)); got shape {arr.shape}: an AUC needs at least one of each set")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr))[:5].tolist()
        raise ValueError(f"{name} holds non-finite scores at documents {bad} (a diverged model scores NaN)")
    return arr
