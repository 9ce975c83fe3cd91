"""Silent regressions: an evaluation gate that compares a candidate model with a baseline on several slices.

A lower headline loss can hide a slice that got worse (a shifted domain, the contamination-free documents).
The gate scores both models on the same documents of every slice and asks, slice by slice, whether the
candidate is worse by more than a tolerance, with a paired bootstrap over documents (Efron & Tibshirani 1993,
"An Introduction to the Bootstrap", Ch. 13, percentile intervals; pairing: each document's two losses are
resampled together, so the spread between documents cancels and only the change is measured).

Per slice, with d_i = candidate_i - baseline_i the change of document i's mean loss (nats/token):
    difference = mean(d)                                   (below 0: the candidate is better)
    [lo, hi]   = the (1 - confidence)/2 and (1 + confidence)/2 quantiles of mean(d*) over `bootstrap`
                 resamples d* of the n documents with replacement (numpy's default quantile, linear)
    verdict    = "worse"     when lo > +tolerance  (the whole interval above +tolerance: a regression)
                 "better"    when hi < -tolerance  (the whole interval below -tolerance)
                 "no change" otherwise: no change beyond the tolerance was shown at this confidence
                 (a wide interval, from few or very different documents, also lands here; lo and hi say so)
The gate passes when no slice is "worse". The headline slice (the first, or `headline=`) is reported apart,
so a summary can say "the headline improved, yet this slice regressed". A tolerance of t nats/token is a
perplexity ratio of exp(t): the default 0.01 lets through changes of about 1% in perplexity.

Each slice is one test at one-sided level (1 - confidence)/2 (5% at the default 0.9), so with k slices and
no real change the chance that some slice fails is at most about k times that; for a family-wise rate of
(1 - c) over k slices, use confidence = 1 - (1 - c)/k (Bonferroni). Each slice draws from its own
generator seeded with `seed`, so its interval depends on its own documents only.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.core.evaluate import sequence_losses
from cot_lab.evaluation.inputs import model_of, token_rows

DEFAULT_TOLERANCE = 0.01   # nats/token: exp(0.01) = 1.01, about a 1% change in perplexity
DEFAULT_CONFIDENCE = 0.9   # two-sided: each verdict is a one-sided test at 5%
DEFAULT_BOOTSTRAP = 2000
MIN_BOOTSTRAP = 100
VERDICTS = ("better", "worse", "no change")
_DRAWS_PER_CHUNK = 4_000_000  # resampled indices held at once (32 MB of int64)


@dataclass(frozen=True)
class SliceResult:
    """One slice of the gate: mean losses (nats/token, documents weighted equally), their change and its interval."""
    name: str
    n_documents: int
    baseline_loss: float    # mean over documents of the baseline's per-document loss
    candidate_loss: float   # the same for the candidate
    difference: float       # candidate_loss - baseline_loss (below 0: the candidate is better)
    lo: float               # paired bootstrap interval of the difference, at the report's confidence
    hi: float
    verdict: str            # "better", "worse" or "no change" (see the module's docstring)

    @property
    def regressed(self) -> bool:
        return self.verdict == "worse"


@dataclass(frozen=True)
class GateReport:
    """The gate's verdict on a candidate: one SliceResult per slice, in the order given; passed unless one is worse."""
    slices: tuple               # SliceResult, one per slice
    headline: str               # the name of the headline slice
    tolerance: float            # nats/token
    confidence: float
    bootstrap: int
    seed: int

    @property
    def passed(self) -> bool:
        """False when any slice regresses (its whole interval lies above +tolerance)."""
        return not any(s.regressed for s in self.slices)

    @property
    def failed(self) -> list[str]:
        """The names of the slices that regress, in order."""
        return [s.name for s in self.slices if s.regressed]

    @property
    def headline_result(self) -> SliceResult:
        return self[self.headline]

    def __getitem__(self, name: str) -> SliceResult:
        for s in self.slices:
            if s.name == name:
                return s
        raise KeyError(f"no slice {name!r}; the slices are {[s.name for s in self.slices]}")

    def frame(self):
        """A pandas DataFrame, one row per slice (index: slice), the headline marked in a 'headline' column."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        rows = [{**{k: v for k, v in asdict(s).items() if k != "name"}, "headline": s.name == self.headline}
                for s in self.slices]
        return pd.DataFrame(rows, index=pd.Index([s.name for s in self.slices], name="slice"))

    def summary(self) -> str:
        """One sentence: passed or failed, naming the slice that failed (the worst, others listed) and the headline."""
        head = self.headline_result
        head_text = f"the headline {head.name!r} changed by {head.difference:+.4f} ({head.verdict})"
        if self.passed:
            return (f"Passes: no slice is worse by more than {self.tolerance:g} nats/token "
                    f"({self.confidence:.0%} intervals over documents); {head_text}.")
        worst = max((s for s in self.slices if s.regressed), key=lambda s: s.lo)
        others = [n for n in self.failed if n != worst.name]
        also = f"; also worse: {', '.join(map(repr, others))}" if others else ""
        tail = "" if worst.name == self.headline else f", though {head_text}"
        return (f"Fails: {worst.name!r} is worse by {worst.difference:+.4f} nats/token ({self.confidence:.0%} "
                f"interval {worst.lo:+.4f} to {worst.hi:+.4f}, above the tolerance {self.tolerance:g}){tail}{also}.")

    def to_dict(self) -> dict:
        """A JSON-able dict of the report (what a model registry stores next to a version)."""
        return {"passed": self.passed, "headline": self.headline, "tolerance": self.tolerance,
                "confidence": self.confidence, "bootstrap": self.bootstrap, "seed": self.seed,
                "slices": [asdict(s) for s in self.slices]}


def document_losses(model_or_run, rows, *, batch_size: int = 32) -> np.ndarray:
    """Mean next-token loss (nats/token) of a model on each document: float64 [n] for int token rows [n, T+1].

    Row i scores rows[i, 1:] predicted from rows[i, :-1], the kit's validation loss (cot_lab.core.evaluate,
    fp32, eval mode, no gradients) averaged over that row's T positions; with equal-length rows their mean is
    `cl.evaluate_loss`'s number on the same rows. model_or_run: a model or a cl.Run (its model from memory or
    its store's checkpoint).
    """
    model = model_of(model_or_run)
    batch_size = validate.integer("batch_size", batch_size, hint="rows scored at once, e.g. 32")
    rows = token_rows("rows", rows, model)
    return sequence_losses(model, rows, batch_size=batch_size).double().mean(dim=1).numpy()


def evaluation_gate(baseline, candidate, slices: dict, *, tolerance: float = DEFAULT_TOLERANCE,
                    confidence: float = DEFAULT_CONFIDENCE, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                    headline: str | None = None, batch_size: int = 32) -> GateReport:
    """Gate `candidate` against `baseline` (models or cl.Runs) on {slice name: token rows [n, T+1]}; see GateReport.

    Both models score the same rows of every slice (document_losses), then evaluation_gate_from_losses
    decides; the arguments are checked before any model runs.
    """
    if not isinstance(slices, dict) or not slices:
        raise ValueError(f"slices={_short(slices)} must be a non-empty dict of {{name: token rows [n, T+1]}}, "
                         "e.g. {'in-distribution': corpus.val_batch(256, 128), 'shifted': ...}")
    _check_settings(tolerance, confidence, bootstrap, seed, headline, list(slices))
    batch_size = validate.integer("batch_size", batch_size, hint="rows scored at once, e.g. 32")
    models = {"baseline": model_of(baseline, "baseline"), "candidate": model_of(candidate, "candidate")}
    checked = {}
    for name, rows in slices.items():  # every slice against both models before either runs
        for model in models.values():
            checked[name] = token_rows(f"slices[{name!r}]", rows, model)
        if checked[name].shape[0] < 2:
            raise ValueError(f"slices[{name!r}] has 1 row: an interval over documents needs at least 2 documents")
    losses = {role: {name: document_losses(model, rows, batch_size=batch_size) for name, rows in checked.items()}
              for role, model in models.items()}
    return evaluation_gate_from_losses(losses["baseline"], losses["candidate"], tolerance=tolerance,
                                       confidence=confidence, bootstrap=bootstrap, seed=seed, headline=headline)


def evaluation_gate_from_losses(baseline_losses: dict, candidate_losses: dict, *,
                                tolerance: float = DEFAULT_TOLERANCE, confidence: float = DEFAULT_CONFIDENCE,
                                bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                                headline: str | None = None) -> GateReport:
    """The gate on precomputed per-document losses: {slice: [n] nats/token} for each model, document i the same
    document in both (paired). Slices are reported in baseline_losses' order; the headline is the first unless
    named. See the module's docstring for the interval and the verdicts.
    """
    for arg, value in (("baseline_losses", baseline_losses), ("candidate_losses", candidate_losses)):
        if not isinstance(value, dict) or not value:
            raise ValueError(f"{arg}={_short(value)} must be a non-empty dict of {{slice name: per-document "
                             "losses}, e.g. {'in-distribution': document_losses(model, rows)}")
    names = list(baseline_losses)
    if set(names) != set(candidate_losses):
        raise ValueError(f"baseline_losses and candidate_losses must name the same slices; only in baseline_losses: "
                         f"{sorted(set(names) - set(candidate_losses), key=str)}, only in candidate_losses: "
                         f"{sorted(set(candidate_losses) - set(names), key=str)}")
    tolerance, confidence, bootstrap, seed, headline = _check_settings(tolerance, confidence, bootstrap, seed,
                                                                       headline, names)
    results = []
    for name in names:
        base = _losses(f"baseline_losses[{name!r}]", baseline_losses[name])
        cand = _losses(f"candidate_losses[{name!r}]", candidate_losses[name])
        if base.size != cand.size:
            raise ValueError(f"candidate_losses[{name!r}] has {cand.size} documents and baseline_losses[{name!r}] "
                             f"{base.size}: the gate is paired, so score both models on the same documents")
        lo, hi = paired_interval(cand - base, confidence=confidence, bootstrap=bootstrap, seed=seed)
        results.append(_slice(name, base, cand, lo, hi, tolerance))
    return GateReport(tuple(results), headline, tolerance, confidence, bootstrap, seed)


def paired_interval(differences, *, confidence: float = DEFAULT_CONFIDENCE, bootstrap: int = DEFAULT_BOOTSTRAP,
                    seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (lo, hi) of the mean of per-document differences, resampling documents."""
    d = np.asarray(differences, dtype=float)
    confidence = validate.number("confidence", confidence, high=1.0, high_open=True, hint="e.g. 0.9 or 0.95")
    bootstrap = validate.integer("bootstrap", bootstrap, low=MIN_BOOTSTRAP, hint="resamples, e.g. 2000")
    seed = validate.integer("seed", seed, low=0)
    if d.ndim != 1 or d.size == 0 or not np.all(np.isfinite(d)):
        raise ValueError(f"differences must be a non-empty 1-D array of finite numbers; got shape {d.shape}")
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _DRAWS_PER_CHUNK // d.size)
    means = np.concatenate([d[rng.integers(0, d.size, size=(min(per_chunk, bootstrap - start), d.size))].mean(axis=1)
                            for start in range(0, bootstrap, per_chunk)])
    alpha = 1.0 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1.0 - alpha / 2])
    return float(lo), float(hi)


def _slice(name, base: np.ndarray, cand: np.ndarray, lo: float, hi: float, tolerance: float) -> SliceResult:
    verdict = "worse" if lo > tolerance else "better" if hi < -tolerance else "no change"
    return SliceResult(name=name, n_documents=int(base.size), baseline_loss=float(base.mean()),
                       candidate_loss=float(cand.mean()), difference=float((cand - base).mean()), lo=lo, hi=hi,
                       verdict=verdict)


def _check_settings(tolerance, confidence, bootstrap, seed, headline, names):
    tolerance = validate.number("tolerance", tolerance, low_open=False,
                                hint=f"nats/token, >= 0; e.g. {DEFAULT_TOLERANCE} (about 1% in perplexity)")
    confidence = validate.number("confidence", confidence, high=1.0, high_open=True,
                                 hint="the interval's coverage, e.g. 0.9 or 0.95")
    bootstrap = validate.integer("bootstrap", bootstrap, low=MIN_BOOTSTRAP,
                                 hint=f"bootstrap resamples, e.g. {DEFAULT_BOOTSTRAP}")
    seed = validate.integer("seed", seed, low=0)
    if headline is None:
        headline = names[0]
    elif headline not in names:
        raise ValueError(f"headline={headline!r} is not a slice; use one of {', '.join(map(repr, names))} "
                         "(or None for the first)")
    return tolerance, confidence, bootstrap, seed, headline


def _losses(name: str, value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be per-document losses (a 1-D array of nats/token); got "
                         f"{type(value).__name__}") from None
    if arr.ndim != 1 or arr.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 per-document losses (an interval over documents "
                         f"needs documents); got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        raise ValueError(f"{name} must hold finite, non-negative losses (nats/token); got {arr[bad][:5].tolist()} "
                         f"at documents {np.flatnonzero(bad)[:5].tolist()} (a diverged model scores NaN)")
    return arr


def _short(value) -> str:
    text = repr(value)
    size = len(value) if hasattr(value, "__len__") else "?"
    return text if len(text) <= 60 else f"{type(value).__name__} of length {size}"
