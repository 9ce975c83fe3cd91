"""Notebook 07's shipped results, read back: contamination against copies, memorisation, the shifts, the gate.

`load_evaluation_results()` checks every file against its manifest's sha256 (rebuild with
`python -m cot_lab.evaluation.pilot run` then `write`). The functions below turn the records into the tables the
notebook shows; each number is computed from the shipped per-document values, none is stored twice.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cot_lab.evaluation import pilot

# What the shift selector offers: the run that is tested, its in-distribution slice and its shifted slice.
SHIFT_VIEWS = {
    "rare topics": dict(run="clean", id="clean", ood="rare topics",
                        about="documents only from topics 12-15, the four the training language draws least"),
    "deep nesting": dict(run="clean", id="clean", ood="deep nesting",
                         about="clauses and brackets open 10 times as often: deeper stacks than training showed"),
    "held-out topics": dict(run="common topics only", id="common topics", ood="rare topics",
                            about="trained on topics 0-11 only, tested on topics 12-15: never seen in training"),
}


def load_evaluation_results(root: str | Path | None = None) -> dict:
    """{"contamination": [per-copies record], "candidates": [per-candidate record], "memorisation": the
    duplicated and deduplicated runs, "junk": the junk runs and the filters' scores, "text": the python-docs and python-code runs, "floors": per slice,
    "study": the study's settings, "manifest": dict}; every record's "run" is a cl.Run (no weights)."""
    from cot_lab.core.results import shipped_run, verified_json

    folder = Path(root) if root else pilot.pilot_dir()
    manifest, (contamination, junk) = verified_json(folder, pilot.FILES[:2], pilot.RERUN)
    runs = [{**r, "run": shipped_run(r["run"])} for r in contamination["runs"]]
    candidates = [{**r, "run": shipped_run(r["run"])} for r in contamination["candidates"]]
    study = {k: v for k, v in contamination.items() if k not in ("runs", "candidates", "floors", "memorisation_study", "text")}
    memo = contamination["memorisation_study"]
    memo = {**memo, "runs": [{**r, "run": shipped_run(r["run"])} for r in memo["runs"]]}
    junk = {**junk, "runs": [{**r, "run": shipped_run(r["run"])} for r in junk["runs"]]}
    text = [{**r, "run": shipped_run(r["run"])} for r in contamination["text"]]
    return dict(contamination=sorted(runs, key=lambda r: r["copies"]), candidates=candidates, junk=junk,
                memorisation=memo, text=text, floors=contamination["floors"], study=study, manifest=manifest)


def by_copies(results: dict, copies: int) -> dict:
    """The contamination record trained with `copies` copies of each planted row; ValueError listing the shipped ones."""
    for record in results["contamination"]:
        if record["copies"] == copies:
            return record
    raise ValueError(f"copies={copies!r} was not shipped; choose one of {[r['copies'] for r in results['contamination']]}")


def row_floors(results: dict) -> dict:
    """{"planted": , "clean": } the exact loss of those very validation rows under the language (nats/token): the
    floor each set's curve is read against (the planted rows happen to be a little easier than the clean ones)."""
    exact = np.asarray(results["floors"]["headline"]["exact"])
    return {"planted": float(exact[:pilot.PLANTED].mean()), "clean": float(exact[pilot.PLANTED:].mean())}


def planted_gap(record: dict) -> float:
    """Mean loss of the clean validation rows minus that of the planted rows, nats/token (0: no sign of the leak)."""
    planted = np.asarray(record["slices"]["headline"][:pilot.PLANTED])
    return float(np.mean(record["slices"]["clean"]) - planted.mean())


def exact_match_rate(record: dict, which: str = "planted") -> float:
    """Share of `which` rows ("planted" or "clean") whose next `suffix` tokens greedy decoding reproduced exactly
    after a `prefix` of the row (Carlini et al. 2022's extractable memorisation)."""
    memo = record["memorisation"]
    return float(np.mean(np.asarray(memo[which]) >= memo["suffix"]))


def leading_match_fraction(record: dict, which: str = "planted") -> float:
    """Mean share of the `suffix` tokens greedy decoding reproduces before its first wrong token ("planted" or
    "clean" rows): a graded version of the exact match."""
    memo = record["memorisation"]
    return float(np.mean(np.asarray(memo[which]) / memo["suffix"]))


def verdict(record: dict) -> str:
    """The 13-gram detector's verdict on the validation rows, in one sentence."""
    det = record["detector"]
    flagged = int(np.sum(det["flagged"]))
    total = len(det["flagged"])
    if flagged == 0:
        return f"clean: none of the {total} validation rows shares a {det['n']}-gram with the training rows"
    return (f"contaminated: {flagged} of the {total} validation rows share a {det['n']}-gram with the training rows "
            f"(precision {det['precision']:.2f}, recall {det['recall']:.2f} against the {pilot.PLANTED} planted)")


def contamination_frame(results: dict):
    """A pandas DataFrame, one row per copies setting: final losses of the planted and clean rows, their gap, the
    membership AUCs (loss and Min-K%), the exact-match rates and the detector's flags, precision and recall."""
    import pandas as pd

    rows = []
    for r in results["contamination"]:
        planted = np.asarray(r["slices"]["headline"][:pilot.PLANTED])
        rows.append(dict(copies=r["copies"], planted_loss=float(planted.mean()),
                         clean_loss=float(np.mean(r["slices"]["clean"])), gap=planted_gap(r),
                         auc_loss=r["membership"]["auc_loss"], auc_min_k=r["membership"]["auc_min_k"],
                         exact_match_planted=exact_match_rate(r, "planted"),
                         exact_match_clean=exact_match_rate(r, "clean"),
                         leading_planted=leading_match_fraction(r, "planted"),
                         leading_clean=leading_match_fraction(r, "clean"),
                         flagged=int(np.sum(r["detector"]["flagged"])), precision=r["detector"]["precision"],
                         recall=r["detector"]["recall"]))
    return pd.DataFrame(rows).set_index("copies")


def run_record(results: dict, name: str) -> dict:
    """The measured record called `name`: "clean" (0 copies), "<k> copies", or a candidate's name."""
    if name == "clean":
        return by_copies(results, 0)
    if name.endswith(" copies") and name.split()[0].isdigit():
        return by_copies(results, int(name.split()[0]))
    for record in results["candidates"]:
        if record["name"] == name:
            return record
    raise ValueError(f"name={name!r} is not a shipped run; use 'clean', '<k> copies' (k in "
                     f"{[r['copies'] for r in results['contamination']]}) or one of "
                     f"{[r['name'] for r in results['candidates']]}")


def shift_table(results: dict, view: str):
    """A pandas DataFrame for one SHIFT_VIEWS entry: rows "in distribution" and "shifted"; columns loss (the
    run's, nats/token), floor (exact loss of the same documents under their own language), excess (loss - floor),
    and unshifted (a perfect model of the unshifted language on those documents)."""
    import pandas as pd

    if view not in SHIFT_VIEWS:
        raise ValueError(f"view={view!r} is not a shift; choose one of {list(SHIFT_VIEWS)}")
    spec = SHIFT_VIEWS[view]
    record = run_record(results, spec["run"])
    out = []
    for label, name in (("in distribution", spec["id"]), ("shifted", spec["ood"])):
        loss = float(np.mean(record["slices"][name]))
        floor = float(np.mean(results["floors"][name]["exact"]))
        out.append(dict(slice=name, loss=loss, floor=floor, excess=loss - floor,
                        unshifted=float(np.mean(results["floors"][name]["unshifted"]))))
    return pd.DataFrame(out, index=pd.Index(["in distribution", "shifted"], name=view))


def gate_slices(record: dict) -> dict:
    """{slice: per-document losses} the gate compares, headline first."""
    return {name: np.asarray(record["slices"][name]) for name in ("headline", "clean", "rare topics", "deep nesting")}


def gate_report(results: dict, candidate: str, baseline: str = "clean", **kwargs):
    """cl.evaluation_gate_from_losses on the shipped per-document losses: `candidate` against `baseline`."""
    from cot_lab.evaluation.gate import evaluation_gate_from_losses

    return evaluation_gate_from_losses(gate_slices(run_record(results, baseline)),
                                       gate_slices(run_record(results, candidate)), **kwargs)


def memorisation_frame(results: dict):
    """A pandas DataFrame, one row per group (index: copies in the duplicated run): the share of its rows whose
    `suffix` tokens greedy decoding reproduces exactly, and the mean share reproduced before the first miss, in the
    duplicated run and in its deduplicated twin (every row once); the clean rows' rates as copies 0."""
    import pandas as pd

    memo = results["memorisation"]
    suffix = memo["suffix"]
    runs = {r["deduplicated"]: r for r in memo["runs"]}
    rows = []
    for key in ["clean"] + [str(c) for c in memo["copies"]]:
        out = dict(copies=0 if key == "clean" else int(key))
        for dedup, tag in ((False, ""), (True, "_deduplicated")):
            matched = np.asarray(runs[dedup]["clean"] if key == "clean" else runs[dedup]["groups"][key])
            out[f"exact{tag}"] = float(np.mean(matched >= suffix))
            out[f"leading{tag}"] = float(np.mean(matched / suffix))
        out["rows"] = len(runs[False]["clean"] if key == "clean" else runs[False]["groups"][key])
        rows.append(out)
    return pd.DataFrame(rows).set_index("copies")


def memorisation_fit(results: dict):
    """Carlini et al.'s log-linear form fitted to the duplicated run's exact-match rates (copies >= 1): a
    MemorisationCurve, the clean rows as its unseen rate."""
    from cot_lab.evaluation.memorisation import memorisation_curve

    frame = memorisation_frame(results)
    seen = frame[frame.index > 0]
    return memorisation_curve(list(seen.index), list(seen.exact), list(seen.rows),
                              unseen_rate=float(frame.loc[0, "exact"]), unseen_rows=int(frame.loc[0, "rows"]))


def junk_frame(results: dict):
    """A pandas DataFrame, one row per junk run: kind, fraction, filtered, the loss of the clean validation rows
    (nats/token) and its cost over the clean run's on the same rows (same shape, same FLOPs)."""
    import pandas as pd

    clean = float(np.mean(by_copies(results, 0)["slices"]["clean"]))
    rows = [dict(kind=r["kind"], fraction=r["fraction"], filtered=r["filtered"],
                 loss=float(np.mean(r["clean_losses"])), cost=float(np.mean(r["clean_losses"])) - clean)
            for r in results["junk"]["runs"]]
    return pd.DataFrame(rows)


def filter_frame(results: dict):
    """A pandas DataFrame, one row per junk kind: the perplexity filter's precision, recall and false-positive
    rate on the junk runs' own training rows, and exact dedup's precision and recall on the same rows."""
    import pandas as pd

    rows = []
    for kind, scores in results["junk"]["filters"]["kinds"].items():
        p, d = scores["perplexity"], scores["dedup"]
        rows.append(dict(kind=kind, perplexity_precision=p["precision"], perplexity_recall=p["recall"],
                         perplexity_fpr=p["fpr"], dedup_precision=d["precision"], dedup_recall=d["recall"]))
    return pd.DataFrame(rows).set_index("kind")


def text_frame(results: dict):
    """A pandas DataFrame: rows the corpus a run trained on, columns the corpus its validation loss is measured on
    (nats/token, the final measurement of its watch), for python-docs and python-code (one tokenizer)."""
    import pandas as pd

    table = {r["name"]: {k: v for k, v in r["history"][-1].items() if k not in ("step", "trained_tokens")}
             for r in results["text"]}
    frame = pd.DataFrame(table).T
    frame.index.name, frame.columns.name = "trained on", "evaluated on"
    return frame[list(frame.index)]
