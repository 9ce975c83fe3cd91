"""Drift monitoring for a served model: two window statistics with alarms calibrated on in-distribution traffic.

A served model drifts silently: requests start to look different (new topics, deeper nesting) or the model
behind the alias is not the one that was evaluated. `drift_monitor` watches two statistics over windows of
`window` requests, both computed from the requests alone (no labels needed):

    token drift  Pearson's chi-squared of the window's token counts against the reference distribution,
                 sum over bins (O - E)^2 / E with E = p_bin * (tokens in the window); tokens are pooled into
                 bins of at least MIN_EXPECTED expected tokens per window (rare tokens together, so that no
                 bin's E is tiny). Tokens of one request are not independent (a document keeps its topic), so
                 the textbook chi-squared distribution does not hold; the threshold is calibrated instead.
    loss drift   the window's mean per-request loss under the champion, nats/token (a request's loss is its
                 mean next-token cross-entropy), one-sided: only a higher loss is an alarm.

Calibration (on the reference requests alone, seeded), each threshold the (1 - rate) quantile (numpy's
default, linear) of `permutations` simulated windows:
    token  each window is `window` distinct reference requests drawn at random; its chi-squared is taken
           against the token distribution of the rest of the reference (a random partition, as a permutation
           test makes). Window and rest are then distributed exactly as a fresh window and a reference of
           N - window requests, the noise of the reference's own counts included. (Drawing windows from one
           fixed half and comparing with the other half also works, but it wastes half the reference and
           inflates the threshold: on 600 requests, windows of 10, its 5% threshold let 2% of fresh windows
           through.) Live windows are compared with the whole reference.
    loss   each window is `window` reference losses drawn with replacement (a bootstrap of the mean: drawn
           without, windows from a finite set understate the spread by the factor (N - window) / (N - 1)).
A window of fresh in-distribution requests then raises each alarm with probability `false_alarm_rate`, up to
the error of thresholds estimated from a finite reference (mostly the error of its mean loss, about
sqrt(window / N) of a window's spread): the reference must hold at least MIN_WINDOWS windows' worth, and 50
or more is better.

Windows are tumbling: `observe` collects `window` requests, checks them, then starts an empty window. Every
check sees new requests, so at the stated rate r per window, k windows of unchanged traffic raise some alarm
with probability 1 - (1 - r)^k (about 1 - e^{-rk}): choose the rate for the alarms a week may bear.

The PSI and its bands (`psi`): the population stability index's bands 0.1 ("some change") and 0.25
("significant change") are a convention, not a test: under no change the PSI is about (1/n + 1/m) times a
chi-squared with bins - 1 degrees of freedom (Yurdakul 2018, "Statistical Properties of Population Stability
Index", Western Michigan University dissertation; Potgieter et al. 2023, arXiv:2307.11878), so the rule's false
alarms depend on the sample sizes. With 10 bins and reference and window of n samples each, the 0.1 rule
false-alarms about 85% of the time at n = 100 and 37% at n = 200 (`psi_false_alarm_rate` re-measures it:
0.84 and 0.37 over 20,000 trials; against a reference of 100,000 samples, 0.39 and 0.02 over 2,000). Calibrate a PSI
threshold by permutation or bootstrap on in-distribution data as this module does, or use a KS or
chi-squared test.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.core.evaluate import sequence_losses
from cot_lab.deploy.monitor_stats import error_rate, latency_summary, psi, psi_false_alarm_rate
from cot_lab.evaluation.inputs import model_of

__all__ = ["Alarm", "DriftMonitor", "WindowReport", "drift_monitor", "request_losses",  # the stats: one import
           "error_rate", "latency_summary", "psi", "psi_false_alarm_rate"]

MIN_EXPECTED = 5.0   # expected tokens per bin and window: Cochran's rule of thumb for a chi-squared cell
MIN_WINDOWS = 10     # reference requests needed: at least this many windows' worth
MIN_TAIL = 10        # calibration windows beyond the threshold: permutations * rate must reach this


@dataclass(frozen=True)
class Alarm:
    """One statistic of one window above its threshold: kind 'token' (chi-squared) or 'loss' (nats/token)."""
    kind: str
    statistic: float
    threshold: float
    window_end: int     # requests the monitor had seen (observe and check) when the window closed, 1-based
    message: str


@dataclass(frozen=True)
class WindowReport:
    """One checked window: both statistics, their thresholds and the alarms raised (loss first)."""
    index: int              # 0 for the monitor's first window
    window_end: int         # requests seen when it closed (1-based index of its last request)
    n_requests: int
    n_tokens: int
    token_statistic: float  # Pearson chi-squared over the monitor's token bins
    token_threshold: float
    loss: float             # mean over requests of each request's loss, nats/token
    loss_threshold: float   # nats/token
    alarms: tuple           # Alarm, at most one per kind

    @property
    def token_alarm(self) -> bool:
        return any(a.kind == "token" for a in self.alarms)

    @property
    def loss_alarm(self) -> bool:
        return any(a.kind == "loss" for a in self.alarms)


def request_losses(model_or_run, requests, *, batch_size: int = 128) -> np.ndarray:
    """Each request's mean next-token loss, nats/token: float64 [n] for token-id lists of >= 2 tokens each.

    A request longer than the model's context + 1 tokens is scored in consecutive pieces of context + 1 tokens
    that share one token, so every token after the first is predicted once (a piece's first tokens see only
    that piece). Pieces of equal length are batched together: no padding, so the numbers are exactly the
    kit's `sequence_losses` (fp32, eval mode).
    """
    model = model_of(model_or_run)
    batch_size = validate.integer("batch_size", batch_size, hint="pieces scored at once, e.g. 128")
    context = int(model.config.max_position_embeddings)
    pieces, owner = [], []
    requests = [ids.tolist() if hasattr(ids, "tolist") else list(ids) for ids in requests]
    for i, ids in enumerate(requests):
        if len(ids) < 2:
            raise ValueError(f"requests[{i}] has {len(ids)} token(s): a loss needs at least 2 (one to predict)")
        for start in range(0, len(ids) - 1, context):
            pieces.append(ids[start:start + context + 1])
            owner.append(i)
    total, count = np.zeros(len(requests)), np.zeros(len(requests))
    by_length: dict[int, list[int]] = {}
    for p, piece in enumerate(pieces):
        by_length.setdefault(len(piece), []).append(p)
    for members in by_length.values():
        rows = torch.tensor([pieces[p] for p in members], dtype=torch.int64)
        sums = sequence_losses(model, rows, batch_size=batch_size).double().sum(dim=1).numpy()
        np.add.at(total, [owner[p] for p in members], sums)
        np.add.at(count, [owner[p] for p in members], rows.shape[1] - 1)
    return total / count


class DriftMonitor:
    """Token and loss drift over tumbling windows of `window` requests; built by `drift_monitor` (see there)."""

    def __init__(self, reference_texts, model, *, corpus, window: int = 50, false_alarm_rate: float = 0.01,
                 permutations: int = 1000, seed: int = 0, reference_losses=None, batch_size: int = 128):
        self.window = validate.integer("window", window, low=2, hint="requests per window, e.g. 50")
        self.false_alarm_rate = validate.number(
            "false_alarm_rate", false_alarm_rate, high=0.5,
            hint="the chance that a window of in-distribution traffic raises an alarm, e.g. 0.01")
        need = math.ceil(MIN_TAIL / self.false_alarm_rate)
        self.permutations = validate.integer(
            "permutations", permutations, low=max(100, need),
            hint=f"calibration windows; the (1 - rate) quantile needs >= {MIN_TAIL} of them beyond it")
        self.seed = validate.integer("seed", seed, low=0)
        self.batch_size = validate.integer("batch_size", batch_size, hint="rows scored at once, e.g. 128")
        self.model = model_of(model, "model")
        self.corpus = _corpus(corpus, self.model)
        self.vocab_size = int(self.model.config.vocab_size)
        reference = self._encode_all("reference_texts", reference_texts)
        if len(reference) < MIN_WINDOWS * self.window:
            raise ValueError(
                f"reference_texts holds {len(reference)} requests, too few for window={self.window}: calibration "
                f"needs at least {MIN_WINDOWS} windows' worth ({MIN_WINDOWS * self.window} requests; 50 windows' "
                f"worth or more is better); pass more in-distribution texts or use a smaller window")
        if reference_losses is not None:
            reference_losses = self._given_losses("reference_losses", reference_losses, len(reference))
        self._calibrate(reference, reference_losses or [None] * len(reference))
        self._history: list[WindowReport] = []
        self._pending: list[tuple[list[int], float | None]] = []
        self._seen = 0

    # ------------------------------------------------------------ calibration
    def _calibrate(self, reference: list[list[int]], given_losses: list) -> None:
        rng = np.random.default_rng(self.seed)
        counts = self._counts(reference)
        # the bins: tokens by falling frequency, each bin grown until it expects MIN_EXPECTED tokens per window
        freq = counts.sum(axis=0).astype(float)
        p_token = freq / freq.sum()
        tokens_per_window = self.window * freq.sum() / len(reference)
        self.bin_of = np.empty(self.vocab_size, dtype=np.int64)
        n_bins, mass = 0, 0.0
        for token in np.argsort(-freq, kind="stable"):
            self.bin_of[token] = n_bins
            mass += p_token[token]
            if mass * tokens_per_window >= MIN_EXPECTED:
                n_bins, mass = n_bins + 1, 0.0
        if (self.bin_of == n_bins).any():  # a last bin short of MIN_EXPECTED (and unseen tokens) joins the one before
            self.bin_of[self.bin_of == n_bins] = max(n_bins - 1, 0)
            n_bins = max(n_bins, 1)
        if n_bins < 2:
            raise ValueError(f"window={self.window}: a window of reference requests expects too few tokens for "
                             f"two bins of {MIN_EXPECTED:g}; use a larger window or longer requests")
        self.n_bins = n_bins
        binned = self._bin(counts)
        total = binned.sum(axis=0)
        self.p_bin = total / total.sum()
        # token: each calibration window is `window` distinct reference requests, compared with the rest of the
        # reference: the pair is distributed exactly as a fresh window against a reference of N - window requests
        token_stats = np.empty(self.permutations)
        for k in range(self.permutations):
            members = rng.choice(len(reference), size=self.window, replace=False)
            window_counts = binned[members].sum(axis=0)
            rest = total - window_counts
            token_stats[k] = self._chi2(window_counts[None, :], rest / rest.sum())[0]
        # loss: windows drawn with replacement from the reference's per-request losses (a bootstrap of the mean)
        losses = self._losses(reference, given_losses)
        self.reference_losses = losses          # [N] nats/token, each reference request's loss under the champion
        self.reference_loss = float(losses.mean())
        loss_means = losses[rng.integers(0, len(losses), size=(self.permutations, self.window))].mean(axis=1)
        q = 1.0 - self.false_alarm_rate
        self._thresholds = {"token": float(np.quantile(token_stats, q)), "loss": float(np.quantile(loss_means, q))}

    @property
    def thresholds(self) -> dict:
        """{'token': chi-squared threshold, 'loss': nats/token}: a window above one raises that alarm."""
        return dict(self._thresholds)

    # ------------------------------------------------------------ monitoring
    def observe(self, text_or_ids, loss: float | None = None) -> Alarm | None:
        """Take one request (text in the corpus's language, or token ids) and its loss (nats/token; None: the
        champion scores it when the window closes). When this request fills the window, check the window, start
        an empty one, and return its alarm (the loss alarm when both fire: history[-1] holds both), else None.
        """
        ids = self._encode("text_or_ids", text_or_ids)
        if loss is not None:
            loss = _loss("loss", loss)
        self._pending.append((ids, loss))
        self._seen += 1
        if len(self._pending) < self.window:
            return None
        pending, self._pending = self._pending, []
        report = self._report([ids for ids, _ in pending], [loss for _, loss in pending])
        return report.alarms[0] if report.alarms else None

    def check(self, texts, losses=None) -> WindowReport:
        """Check a whole window of exactly `window` requests at once (texts or token ids; losses in nats/token
        per request, or None to score them with the champion); the report is added to `history`."""
        requests = self._encode_all("texts", texts)
        if len(requests) != self.window:
            raise ValueError(f"texts holds {len(requests)} requests, but the thresholds are calibrated for windows of "
                             f"window={self.window}: pass {self.window} requests, or feed a stream to observe()")
        losses = [None] * len(requests) if losses is None else self._given_losses("losses", losses, len(requests))
        self._seen += len(requests)
        return self._report(requests, losses)

    @property
    def history(self) -> list:
        """The WindowReports checked so far, oldest first (a copy)."""
        return list(self._history)

    @property
    def pending(self) -> int:
        """Requests observed in the window that is still filling."""
        return len(self._pending)

    def frame(self):
        """A pandas DataFrame, one row per checked window (index: window), for a live plot of both statistics."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        columns = ["window_end", "n_requests", "n_tokens", "token_statistic", "token_threshold", "token_alarm",
                   "loss", "loss_threshold", "loss_alarm"]
        rows = [{c: getattr(r, c) for c in columns} for r in self._history]
        return pd.DataFrame(rows, columns=columns, index=pd.Index([r.index for r in self._history], name="window"))

    def __repr__(self) -> str:
        t = self._thresholds
        return (f"DriftMonitor(window={self.window}, false_alarm_rate={self.false_alarm_rate:g}, "
                f"token threshold {t['token']:.1f} over {self.n_bins} bins, loss threshold {t['loss']:.4f} "
                f"nats/token (reference {self.reference_loss:.4f}), {len(self._history)} windows checked)")

    # ------------------------------------------------------------ internals
    def _report(self, requests: list[list[int]], losses: list) -> WindowReport:
        counts = self._bin(self._counts(requests)).sum(axis=0)
        token_stat = float(self._chi2(counts[None, :])[0])
        loss = float(self._losses(requests, losses).mean())
        end, rate = self._seen, self.false_alarm_rate
        t_token, t_loss = self._thresholds["token"], self._thresholds["loss"]
        alarms = []
        if loss > t_loss:
            alarms.append(Alarm("loss", loss, t_loss, end, (
                f"loss drift at request {end}: the window's mean loss {loss:.4f} nats/token is above the threshold "
                f"{t_loss:.4f} (reference {self.reference_loss:.4f}); an in-distribution window gets this high "
                f"with probability {rate:g}")))
        if token_stat > t_token:
            alarms.append(Alarm("token", token_stat, t_token, end, (
                f"token drift at request {end}: chi-squared {token_stat:.1f} over {self.n_bins} token bins is above "
                f"the threshold {t_token:.1f}; an in-distribution window gets this high with probability {rate:g}")))
        report = WindowReport(len(self._history), end, len(requests), int(counts.sum()), token_stat, t_token,
                              loss, t_loss, tuple(alarms))
        self._history.append(report)
        return report

    def _losses(self, requests: list[list[int]], given: list) -> np.ndarray:
        missing = [i for i, v in enumerate(given) if v is None]
        out = np.array([np.nan if v is None else v for v in given], dtype=float)
        if missing:
            out[missing] = request_losses(self.model, [requests[i] for i in missing], batch_size=self.batch_size)
        return out

    @staticmethod
    def _given_losses(name: str, losses, n: int) -> list:
        try:
            arr = np.asarray(losses.detach().cpu() if isinstance(losses, torch.Tensor) else losses, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be one loss per request (nats/token); got {type(losses).__name__}") from None
        if arr.shape != (n,):
            raise ValueError(f"{name} must hold one loss per request ({n}, nats/token); got shape {arr.shape}")
        return [_loss(f"{name}[{i}]", float(v)) for i, v in enumerate(arr)]

    def _counts(self, requests: list[list[int]]) -> np.ndarray:
        counts = np.zeros((len(requests), self.vocab_size), dtype=np.int64)
        for i, ids in enumerate(requests):
            counts[i] = np.bincount(ids, minlength=self.vocab_size)
        return counts

    def _bin(self, counts: np.ndarray) -> np.ndarray:
        out = np.zeros((counts.shape[0], self.n_bins), dtype=np.int64)
        np.add.at(out.T, self.bin_of, counts.T)
        return out

    def _chi2(self, window_counts: np.ndarray, p_bin: np.ndarray | None = None) -> np.ndarray:
        """Pearson chi-squared of each row of binned counts [k, n_bins] against p_bin (default: the reference's)."""
        expected = window_counts.sum(axis=1, keepdims=True) * (self.p_bin if p_bin is None else p_bin)
        with np.errstate(divide="ignore", invalid="ignore"):  # a bin the reference never saw: inf when it appears
            cells = (window_counts - expected) ** 2 / expected
        return np.where(expected > 0, cells, np.where(window_counts > 0, np.inf, 0.0)).sum(axis=1)

    def _encode_all(self, name: str, texts) -> list[list[int]]:
        if isinstance(texts, (str, bytes)):
            raise ValueError(f"{name} must be a list of requests (texts or token-id lists), not one string; "
                             "wrap it in a list")
        if isinstance(texts, torch.Tensor):
            texts = texts.detach().cpu().numpy()
        if isinstance(texts, np.ndarray) and texts.ndim == 2:
            texts = list(texts)
        try:
            texts = list(texts)
        except TypeError:
            raise ValueError(f"{name} must be a list of requests (texts or token-id lists); got "
                             f"{type(texts).__name__}") from None
        if not texts:
            raise ValueError(f"{name} is empty; pass in-distribution requests, e.g. "
                             "[corpus.decode(row) for row in corpus.val_batch(1000, 128)]")
        return [self._encode(f"{name}[{i}]", t) for i, t in enumerate(texts)]

    def _encode(self, name: str, item) -> list[int]:
        if isinstance(item, str):
            try:
                ids = list(self.corpus.encode(item))
            except ValueError as err:
                raise ValueError(f"{name} cannot be encoded by the corpus: {err}") from None
        else:
            arr = np.asarray(item.detach().cpu() if isinstance(item, torch.Tensor) else item)
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise ValueError(f"{name} must be a text or a 1-D list of token ids; got {type(item).__name__} "
                                 f"of shape {arr.shape}")
            ids = arr.astype(np.int64).tolist()
        if len(ids) < 2:
            raise ValueError(f"{name} has {len(ids)} token(s); a request needs at least 2 (a loss predicts the second "
                             "from the first)")
        if min(ids) < 0 or max(ids) >= self.vocab_size:
            raise ValueError(f"{name} holds token ids {min(ids)}..{max(ids)}, outside the model's vocabulary "
                             f"0..{self.vocab_size - 1}")
        return ids


def drift_monitor(reference_texts, model, *, corpus, window: int = 50, false_alarm_rate: float = 0.01,
                  permutations: int = 1000, seed: int = 0, reference_losses=None,
                  batch_size: int = 128) -> DriftMonitor:
    """A DriftMonitor calibrated on `reference_texts` (in-distribution requests: texts or token-id rows).

    model: the champion (a model or a cl.Run) whose loss is watched; corpus: what encodes text (a Corpus with
    `encode`, or a name for cl.load_corpus); window: requests per tumbling window; false_alarm_rate: the chance
    that a window of in-distribution requests raises each alarm (in (0, 0.5]); permutations: simulated windows
    behind each threshold (at least 10 / false_alarm_rate); seed: the calibration draws; reference_losses: the
    reference requests' losses under the champion (nats/token, one each), if already known (None: scored here);
    batch_size: rows scored at once. See the module's docstring for the statistics and the calibration.
    """
    return DriftMonitor(reference_texts, model, corpus=corpus, window=window, false_alarm_rate=false_alarm_rate,
                        permutations=permutations, seed=seed, reference_losses=reference_losses,
                        batch_size=batch_size)


def _corpus(corpus, model):
    if isinstance(corpus, str):
        from cot_lab.data import load_corpus  # imported here: loading a corpus builds its tables

        corpus = load_corpus(corpus)
    if not callable(getattr(corpus, "encode", None)):
        raise ValueError(f"corpus={type(corpus).__name__} must encode text (corpus.encode(text) -> token ids), e.g. "
                         "cl.load_corpus('synthetic-v3')")
    vocab = getattr(corpus, "vocab_size", None)
    if vocab is not None and int(vocab) != int(model.config.vocab_size):
        raise ValueError(f"corpus has {vocab} token ids and the model {model.config.vocab_size}: use the corpus the "
                         "model was trained on")
    return corpus


def _loss(name: str, value) -> float:
    if not validate.is_number(value) or value < 0:
        raise ValueError(f"{name}={value!r} must be a finite, non-negative loss (nats/token), or None to score it")
    return float(value)
