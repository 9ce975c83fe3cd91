"""Run-store lookups and panel slider moves with many runs stored (issue 10), measured in one run on this machine.

    python benchmarks/store_lookup.py [--runs 1000] [--curve-points 300] [--repeats 50] [--profile laptop]

Builds a temporary store (under a temporary COT_LAB_HOME: the user's cache is never touched) holding --runs
finished runs with realistic records (a train curve of --curve-points points, an evaluation curve of 20), keyed
exactly as `cl.train` keys them for notebook 00's panel settings (sizes x budgets x seeds). Then it times, as
median and worst of --repeats: a lookup by key and by settings, notebook 00's `TrainPanel` slider moves (onto a
stored run, which draws its loss curve, and onto settings never trained), the same with the old lookup (decode
every record and compare, as before issue 10) for comparison, and a slider move of `BudgetPanel` (GPU-hours)
and of `SizeAtBudgetPanel` (model size). Targets from the issue, at 1,000 runs: a lookup <= 20 ms, a slider
move of the training panel <= 50 ms. Panels get peak_flops=1e11 so that nothing measures the machine's peak.
"""
from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import tempfile
import time

TARGETS_MS = {"lookup": 20.0, "slider": 50.0}


def timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    """Milliseconds of `fn()` per call, `repeats` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def moves(widget, a, b, repeats: int, warmup: int = 2, before=None) -> tuple[list[float], list[float]]:
    """Milliseconds of setting `widget.value` to `a` (from `b`) and to `b` (from `a`): the observers' work.

    `before()`, if given, runs untimed before every move (to forget what a panel cached).
    """
    to_a, to_b = [], []
    for i in range(warmup + repeats):
        for value, sink in ((a, to_a), (b, to_b)):
            if before is not None:
                before()
            t0 = time.perf_counter()
            widget.value = value
            if i >= warmup:
                sink.append((time.perf_counter() - t0) * 1e3)
    return to_a, to_b


def old_stored_run(self):
    """TrainPanel._stored_run before issue 10: decode every stored run and compare fields."""
    from cot_lab.core.recipe import default_lr

    cfg, loaded = self.config, self._corpora.get(self.corpus_name)
    budget = {"kind": "flops", "value": self.flops}
    want = dict(seed=self.seed, batch_size=self.profile.batch_size, eval_sequences=self.profile.eval_sequences,
                lr=default_lr(cfg))
    for run in reversed(self.store.runs(status="ok")):
        if (run.config == cfg and run.budget == budget and run.corpus == self.corpus_name
                and (loaded is None or run.corpus_fingerprint == loaded.fingerprint)
                and run.device == self.device.type and run.precision == self.precision
                and all(run.hparams.get(k) == v for k, v in want.items())):
            return run
    return None


def old_calibrate_from_store(self):
    """TrainPanel._calibrate_from_store before issue 10: decode every stored run, keep this device's newest."""
    from cot_lab.core.device import device_name

    mine = [r for r in self.store.runs(status="ok") if r.device == self.device.type
            and r.device_name == device_name(self.device) and r.wall_s > 0]
    if mine:
        self._calibrate(mine[-1])


def make_run(panel, corpus, size: int, flops: float, seed: int, points: int):
    """A finished run (no model) as `cl.train` would store it for these panel settings; None below one step."""
    from cot_lab.core.device import device_name
    from cot_lab.core.runs import Run, now_iso
    from cot_lab.core.training import plan_run

    P, cfg = panel.profile, panel._configs[size]
    try:
        plan = plan_run(cfg, corpus, flops=flops, seed=seed, batch_size=P.batch_size,
                        eval_sequences=P.eval_sequences, device=panel.device)
    except ValueError:  # a budget below one step for this size: the trainer refuses it too
        return None
    tps = plan.tokens_per_step
    curve = [[i, i * tps, 6.0 - 2.0 * i / points] for i in range(1, points + 1)]
    val = [[i * points // 20, i * points // 20 * tps, 6.0 - 2.0 * i / 20] for i in range(1, 21)]
    return Run(run_id=plan.key, config=cfg, corpus=corpus.name, corpus_fingerprint=corpus.fingerprint,
               budget=plan.budget, hparams={**plan.hparams, "micro_batch_size": P.batch_size},
               steps=points, tokens=points * tps, flops=flops, wall_s=1.0 + flops / 1e11, train_s=flops / 1e11,
               train_curve=curve, val_curve=val, final_val_loss=val[-1][2], entropy=corpus.entropy_for(P.seq_len)[0],
               device=panel.device.type, device_name=device_name(panel.device), precision=plan.precision,
               versions={"cot_lab": "bench"}, created_at=now_iso())


def fill(store, panel, corpus, n_runs: int, points: int, keep_free: set) -> int:
    """Save `n_runs` runs at the panel's slider stops (size x budget x seed, shuffled), none in `keep_free`."""
    lo, hi, step = panel.budget_slider.min, panel.budget_slider.max, panel.budget_slider.step
    budgets = sorted({float(f"{10 ** (lo + i * step):.2g}") for i in range(round((hi - lo) / step) + 1)})
    combos = [c for c in itertools.product(panel._configs, budgets, range(10)) if c not in keep_free]
    random.Random(0).shuffle(combos)
    saved = 0
    for size, flops, seed in combos:
        if saved == n_runs:
            return saved
        run = make_run(panel, corpus, size, flops, seed, points)
        if run is not None:
            store.save(run)
            saved += 1
    raise SystemExit(f"the profile's slider stops give only {saved} distinct runs; lower --runs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--curve-points", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--profile", default="laptop")
    args = parser.parse_args()

    home = tempfile.TemporaryDirectory(prefix="cot_lab_bench_")
    os.environ["COT_LAB_HOME"] = home.name  # before cot_lab is imported: nothing lands in the user's cache
    import cot_lab as cl
    from cot_lab.budgets.panel import BudgetPanel
    from cot_lab.core.law import ScalingLaw
    from cot_lab.core.runs import settings_key
    from cot_lab.core.training import plan_run
    from cot_lab.scaling import panel as scaling_panel
    from cot_lab.scaling.panel import SizeAtBudgetPanel
    from cot_lab.start.panel import TrainPanel

    corpus = cl.load_corpus("synthetic")
    store = cl.RunStore(os.path.join(home.name, "bench-store"))
    panel = TrainPanel(corpus, store=store, profile=args.profile, peak_flops=1e11, device="cpu")
    sizes = list(panel._configs)
    size_hit, size_miss = sizes[len(sizes) // 2], sizes[len(sizes) // 2 + 1]
    flops_hit = panel.flops
    miss_value = 10 ** (panel.budget_slider.min + 10 * panel.budget_slider.step)  # a budget stop never trained
    flops_miss = float(f"{miss_value:.2g}")
    keep_free = {(size_hit, flops_miss, panel.seed), (size_miss, flops_miss, panel.seed),
                 (size_miss, flops_hit, panel.seed)}
    t0 = time.perf_counter()
    fill(store, panel, corpus, args.runs - 1, args.curve_points, keep_free | {(size_hit, flops_hit, panel.seed)})
    store.save(make_run(panel, corpus, size_hit, flops_hit, panel.seed, args.curve_points))  # the stored setting
    hit_cfg = panel._configs[size_hit]
    hit_plan = plan_run(hit_cfg, corpus, flops=flops_hit, seed=panel.seed, batch_size=panel.profile.batch_size,
                        eval_sequences=panel.profile.eval_sequences, device=panel.device)
    fill_s = time.perf_counter() - t0
    db_mb = os.path.getsize(store.db_path) / 2**20
    print(f"{len(store):,} runs stored in {fill_s:.1f} s ({db_mb:.1f} MiB of SQLite), train curves of "
          f"{args.curve_points} points; profile {args.profile!r}, {len(sizes)} size stops; "
          f"{cl.device_name('cpu')}; median and worst of {args.repeats} (ms)")

    rows: list[tuple[str, list[float], str]] = []
    R = args.repeats
    miss_key = "0" * 20
    by_name = settings_key({**hit_plan.spec, "corpus": corpus.name})
    rows.append(("lookup by key, stored: store.get(key, status='ok')",
                 timed(lambda: store.get(hit_plan.key, status="ok"), R), "lookup"))
    rows.append(("lookup by key, not stored", timed(lambda: store.get(miss_key, status="ok"), R), "lookup"))
    rows.append(("lookup by settings, corpus by name: store.newest(settings=...)",
                 timed(lambda: store.newest("ok", settings=by_name), R), "lookup"))
    rows.append(("newest timed run on this device (panel start)",
                 timed(lambda: store.newest("ok", device="cpu", device_name=cl.device_name("cpu"), timed=True), R),
                 "lookup"))
    rows.append(("plan_run (the key a slider move computes)",
                 timed(lambda: plan_run(hit_cfg, corpus, flops=flops_hit, batch_size=panel.profile.batch_size,
                                        eval_sequences=panel.profile.eval_sequences, device="cpu"), R), ""))
    old_r = max(3, R // 10)
    rows.append(("OLD lookup: decode all records, compare (parse all)",
                 timed(lambda: [r for r in store.runs(status="ok") if r.run_id == hit_plan.key], old_r, 1), "lookup"))

    panel.size_slider.value, panel.budget_slider.value = size_hit, flops_hit
    assert panel._stored_run() is not None and panel._stored_run().run_id == hit_plan.key, "the hit is not stored"
    rows.append(("TrainPanel._stored_run() alone", timed(panel._stored_run, R), ""))
    rows.append(("TrainPanel._refresh_readouts() alone", timed(panel._refresh_readouts, R), ""))
    forget = panel.__dict__.get("_drawn", {}).clear  # the panel's cache of drawn loss curves
    rows.append(("TrainPanel loss-curve drawing alone (_show_stored, first time)",
                 timed(lambda: (forget(), panel._show_stored()), R), ""))
    to_hit, to_miss = moves(panel.size_slider, size_hit, size_miss, R, before=forget)
    rows.append(("TrainPanel size slider -> stored run, first time (draws it)", to_hit, "slider"))
    rows.append(("TrainPanel size slider -> not trained", to_miss, "slider"))
    to_hit, _ = moves(panel.size_slider, size_hit, size_miss, R)
    rows.append(("TrainPanel size slider -> stored run, seen before", to_hit, "slider"))
    panel.size_slider.value = size_hit
    to_hit, to_miss = moves(panel.budget_slider, flops_hit, miss_value, R, before=forget)
    rows.append(("TrainPanel budget slider -> stored run, first time", to_hit, "slider"))
    rows.append(("TrainPanel budget slider -> not trained", to_miss, "slider"))
    to_hit, _ = moves(panel.budget_slider, flops_hit, miss_value, R)
    rows.append(("TrainPanel budget slider -> stored run, seen before", to_hit, "slider"))
    panel.budget_slider.value = flops_hit
    assert panel.last_error is None, panel.last_error
    t0 = time.perf_counter()
    TrainPanel(corpus, store=store, profile=args.profile, peak_flops=1e11, device="cpu")
    rows.append(("TrainPanel(...) construction (calibrates from the store)", [(time.perf_counter() - t0) * 1e3], ""))

    new_stored, new_cal = TrainPanel._stored_run, TrainPanel._calibrate_from_store
    TrainPanel._stored_run, TrainPanel._calibrate_from_store = old_stored_run, old_calibrate_from_store
    try:
        to_hit, to_miss = moves(panel.size_slider, size_hit, size_miss, old_r, warmup=1, before=forget)
        rows.append(("OLD TrainPanel size slider -> stored run, first time", to_hit, "slider"))
        rows.append(("OLD TrainPanel size slider -> not trained", to_miss, "slider"))
        rows.append(("OLD TrainPanel._calibrate_from_store() (panel start)",
                     timed(panel._calibrate_from_store, old_r, 1), ""))
    finally:
        TrainPanel._stored_run, TrainPanel._calibrate_from_store = new_stored, new_cal

    budget = BudgetPanel(args.profile, peak_flops=1e11, device="cpu")
    h1, h2 = budget.hours_slider.value, budget.hours_slider.value * 2
    a, b = moves(budget.hours_slider, h2, h1, R)
    rows.append(("BudgetPanel GPU-hours slider (arithmetic, no store)", a + b, "slider"))

    law = ScalingLaw(E=3.0, A=406.4, B=410.7, alpha=0.34, beta=0.28, source="benchmark")
    sized = SizeAtBudgetPanel(law, 1e12, corpus, store=store)
    i, j = sized.slider.value, (sized.slider.value + 1) % len(sized.configs)
    a, b = moves(sized.slider, j, i, R)
    rows.append(("SizeAtBudgetPanel size slider (law + figure, no store)", a + b, "slider"))

    def figure_only():
        cfgs = sized.configs
        fig = scaling_panel.size_at_budget(law, sized.flops, [cl.count_params(c).total for c in cfgs],
                                           [sized.flops / cl.flops_per_token(c) for c in cfgs],
                                           chosen=cl.count_params(sized.config).total, measured=[], floor=None)
        scaling_panel.figure_display_data(fig)

    rows.append(("SizeAtBudgetPanel figure drawing alone (size_at_budget + PNG)", timed(figure_only, R), ""))

    width = max(len(name) for name, _, _ in rows)
    print(f"\n{'':{width}}  {'median':>8}  {'worst':>8}  {'n':>3}  target")
    for name, ms, kind in rows:
        target = TARGETS_MS.get(kind)
        verdict = "" if target is None else f"<= {target:.0f} ms " + (
            "ok" if max(ms) <= target else "median ok, worst over" if statistics.median(ms) <= target else "OVER")
        print(f"{name:{width}}  {statistics.median(ms):8.2f}  {max(ms):8.2f}  {len(ms):3d}  {verdict}")
    home.cleanup()


if __name__ == "__main__":
    main()
