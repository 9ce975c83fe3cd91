"""Shipped results: real sweep runs written by `cot-lab precompute`, read back by the notebooks at once.

A result set is a folder `cot_lab/precomputed/<profile>/` (package data, so it ships in the wheel) of plain JSON (never pickle: these files travel
from instructors to students): `runs.json` (one record per run, loss curves included), `holdout.json`
(the held-out budget's prediction and its measured run) and `manifest.json` (versions, the hardware
that ran them, each run's config hash, and the sha256 of every file, checked on load).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

from cot_lab.core.io import write_json
from cot_lab.core.runs import Run, now_iso

FILES = ("runs.json", "holdout.json")


def data_root() -> Path:
    """The folder of shipped result sets: `$COT_LAB_DATA`, else `precomputed/` inside the installed package."""
    env = os.environ.get("COT_LAB_DATA")
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "precomputed"


def results_dir(profile: str, root: str | os.PathLike | None = None) -> Path:
    """Folder of the shipped result set for `profile` (e.g. 'laptop')."""
    return Path(root) if root is not None else data_root() / profile


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def config_hash(run: Run) -> str:
    """Hex sha256 (16 chars) of a run's model config, as canonical JSON."""
    return hashlib.sha256(json.dumps(run.config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


MAX_CURVE_POINTS = 200  # a shipped training curve keeps this many points: plots look the same, files stay small


def thin_curve(curve: list, max_points: int = MAX_CURVE_POINTS) -> list:
    """Every k-th point of a [step, tokens, loss] curve so that at most `max_points` remain; the last point is kept."""
    if len(curve) <= max_points:
        return list(curve)
    stride = -(-len(curve) // max_points)
    return curve[::stride][: max_points - 1] + [curve[-1]]


def shipped_record(run: Run) -> dict:
    """A run's JSON record with its per-step training curve thinned (validation curve kept whole)."""
    record = run.to_record()
    record["train_curve"] = thin_curve(record["train_curve"])
    return record


def hardware_summary() -> dict:
    """The machine the runs trained on: device, its name, threads, measured peak FLOP/s per precision."""
    import torch

    from cot_lab.core.device import autocast_dtype, detect_device, device_name, measure_peak_flops

    dev = detect_device()
    amp = autocast_dtype(dev)
    peaks = {"fp32": measure_peak_flops(dev, torch.float32)}
    if amp is not None:
        peaks[str(amp).removeprefix("torch.")] = measure_peak_flops(dev, amp)
    return dict(device=dev.type, device_name=device_name(dev), threads=torch.get_num_threads(),
                platform=platform.platform(), peak_flops=peaks)


def save_results(out: str | os.PathLike, runs: list[Run], holdout: dict, *, profile: str, plan: dict,
                 sweep_wall_s: float, sweep_train_s: float, **extra) -> Path:
    """Write runs.json, holdout.json and manifest.json (with sha256 of each file) into `out`; returns the folder."""
    from cot_lab.core.training import versions

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    # write_json: atomic, and the bytes json.dumps(obj, indent=1, sort_keys=True) + "\n" (NaN allowed, json's
    # default) that the shipped sets were written with: the manifest's sha256 checksums depend on them.
    write_json(folder / "runs.json", [shipped_record(r) for r in runs])
    write_json(folder / "holdout.json", {**holdout, "runs": [shipped_record(r) for r in holdout["runs"]]})
    manifest = dict(
        profile=profile, created_at=now_iso(), versions=versions(), hardware=hardware_summary(), plan=plan,
        sweep_wall_s=sweep_wall_s, sweep_train_s=sweep_train_s, **extra,
        runs=[dict(run_id=r.run_id, config_hash=config_hash(r), n_params=r.n_params, budget_flops=r.budget["value"],
                   status=r.status, device_name=r.device_name, precision=r.precision) for r in runs],
        files={name: sha256_file(folder / name) for name in FILES},
    )
    write_json(folder / "manifest.json", manifest)
    return folder


def load_results(profile: str = "laptop", root: str | os.PathLike | None = None) -> dict:
    """The shipped result set: {"runs": [Run], "holdout": dict, "manifest": dict}, sha256-checked against the manifest.

    holdout = {"prediction": the law's pick and predicted loss, "runs": the Runs trained at that budget (one per
    seed), "loss": their mean final loss, "relative_error": loss / predicted - 1, "fitted_law": the Approach 3
    parameters used}.
    """
    if not isinstance(profile, str) or not profile:
        raise ValueError(f"profile={profile!r} must be a profile name such as 'laptop' or 'smoke'")
    folder = results_dir(profile, root)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        shipped = sorted(p.parent.name for p in data_root().glob("*/manifest.json"))
        raise FileNotFoundError(f"no shipped results at {folder} (profile={profile!r}); shipped profiles: "
                                f"{shipped or 'none'}; make them with `cot-lab precompute --profile {profile}`")
    manifest = json.loads(manifest_path.read_text())
    for name, digest in manifest["files"].items():
        if sha256_file(folder / name) != digest:
            raise ValueError(f"{folder / name} does not match the sha256 in its manifest: it changed after "
                             f"`cot-lab precompute` wrote it; restore it from git or precompute again")
    runs = [Run.from_record(r) for r in json.loads((folder / "runs.json").read_text())]
    for run in runs:
        run.from_store = True
    holdout = json.loads((folder / "holdout.json").read_text())
    holdout["runs"] = [Run.from_record(r) for r in holdout["runs"]]
    for run in holdout["runs"]:
        run.from_store = True
    return {"runs": runs, "holdout": holdout, "manifest": manifest}


def shipped_run(record: dict):
    """A Run from a shipped record, marked as coming from a store (it has no weights to train further)."""
    run = Run.from_record(record)
    run.from_store = True
    return run


def verified_json(folder: Path, files, rerun: str) -> tuple[dict, list]:
    """(manifest, [each of `files` parsed]) from a shipped folder, each file checked against the manifest's sha256;
    ValueError naming the file and `rerun` (the command that rebuilds it) if one was changed."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in files:
        if sha256_file(folder / name) != manifest["files"][name]:
            raise ValueError(f"{folder / name} does not match its manifest's sha256; reinstall cot-lab or rerun "
                             f"`{rerun}`")
    return manifest, [json.loads((folder / name).read_text()) for name in files]


def pilot_cli(argv, prog: str, run_pilot, write_pilot, workers: int) -> int:
    """`prog run [--store DIR] [--workers N]` and `prog write [--store DIR] [--out DIR]` for a shipped experiment."""
    import argparse

    from cot_lab.core.runs import RunStore

    parser = argparse.ArgumentParser(prog=prog)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "write"):
        command = sub.add_parser(name)
        command.add_argument("--store", default=None)
        if name == "run":
            command.add_argument("--workers", type=int, default=workers)
        else:
            command.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    store = RunStore(args.store) if args.store else RunStore()
    if args.command == "run":
        run_pilot(store, workers=args.workers)
    else:
        print(f"wrote {write_pilot(store, args.out)}")
    return 0
