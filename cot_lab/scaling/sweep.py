"""IsoFLOP sweeps: plan model sizes that bracket the compute-optimal one at each budget, then run them all.

A sweep is many independent `cl.train` runs. `run_sweep` trains them in order of budget, keeps every
run in a `RunStore` (so a sweep stopped half-way resumes where it stopped: finished runs come back
from the store at once), and shows one progress bar over the whole sweep's FLOPs with an ETA.

`workers=2` trains two runs side by side in worker processes (one thread each on a 2-core CPU);
`benchmarks/sweep_parallel.py` measures whether that beats one run at a time on all cores. Where one
machine is not enough, Ray spreads the same independent runs over a cluster (`ray.remote` tasks with
`num_cpus` / `num_gpus` each; see the Ray documentation, docs.ray.io); the kit does not ship it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

from cot_lab.core import validate
from cot_lab.core.accounting import count_params, flops_per_token
from cot_lab.core.config import ModelConfig
from cot_lab.core.interrupts import validate_stop
from cot_lab.data.base import Corpus
from cot_lab.core.recipe import batch_size_for
from cot_lab.core.runs import Run, RunStore
from cot_lab.core.shapes import sizes_around
from cot_lab.scaling.progress import SweepProgress

MIN_STEPS = 30  # fewer optimizer steps than this and warmup plus cosine is not a real schedule


@dataclass(frozen=True)
class SweepPoint:
    """One planned run: a model shape trained for `flops` training FLOPs (the trainer's count, H22 App. F)."""

    flops: float
    config: ModelConfig
    batch_size: int = 16  # sequences of config.seq_len tokens per optimizer step
    lr: float | None = None  # peak learning rate; None: the recipe's `default_lr(config)`

    @property
    def n_params(self) -> int:
        """Total parameters (embeddings counted once: they are tied)."""
        return count_params(self.config).total

    @property
    def tokens(self) -> float:
        """Training tokens the budget buys for this shape."""
        return self.flops / flops_per_token(self.config)


@dataclass
class SweepPlan:
    """The runs of an IsoFLOP sweep, budget by budget, each budget's sizes from small to large."""

    points: list[SweepPoint]

    def __len__(self) -> int:
        return len(self.points)

    def __iter__(self):
        return iter(self.points)

    @property
    def budgets(self) -> list[float]:
        """The distinct budgets, FLOPs, ascending."""
        return sorted({p.flops for p in self.points})

    @property
    def total_flops(self) -> float:
        """Training FLOPs of the whole sweep."""
        return float(sum(p.flops for p in self.points))

    def to_frame(self):
        """A pandas DataFrame: one row per planned run."""
        import pandas as pd

        return pd.DataFrame([dict(budget_flops=p.flops, n_params=p.n_params, d_model=p.config.d_model,
                                  n_layer=p.config.n_layer, n_head=p.config.n_head, tokens=p.tokens,
                                  tokens_per_param=p.tokens / p.n_params, batch_size=p.batch_size, lr=p.lr,
                                  steps=int(p.tokens // (p.batch_size * p.config.seq_len)))
                             for p in self.points])


def _centre_function(n_opt, tokens_per_param, seq_len: int, vocab_size: int):
    """C -> the N a budget's sizes are centred on: `n_opt` (a function, or an (N at 1e12 FLOPs, exponent) pair),
    else the N whose tokens per parameter, counted as the trainer counts FLOPs, is `tokens_per_param`."""
    from scipy.optimize import brentq

    from cot_lab.core.shapes import ladder_flops_per_token

    if n_opt is not None and tokens_per_param is not None:
        raise ValueError("give n_opt= or tokens_per_param=, not both: each says where a budget's sizes are centred")
    if n_opt is not None:
        if callable(n_opt):
            return n_opt
        try:
            n_at_1e12, exponent = (float(v) for v in n_opt)
        except (TypeError, ValueError):
            raise ValueError(f"n_opt={n_opt!r} must be a function of C or a pair (N_opt at 1e12 FLOPs, exponent a), "
                             "e.g. (7e4, 0.65)") from None
        validate.number("n_opt[0]", n_at_1e12, hint="parameters at 1e12 FLOPs, e.g. 7e4")
        validate.number("n_opt[1]", exponent, high=1.0, hint="the exponent a of N_opt ~ C^a, e.g. 0.5")
        return lambda C: n_at_1e12 * (C / 1e12) ** exponent
    tokens_per_param = validate.number("tokens_per_param", 20.0 if tokens_per_param is None else tokens_per_param,
                                       hint="e.g. 20")
    cost = ladder_flops_per_token(seq_len, vocab_size)
    # tokens/param = C / (cost(N) N), falling in N: the root in log N
    return lambda C: math.exp(brentq(lambda x: math.log(C / (cost(math.exp(x)) * math.exp(x)) / tokens_per_param),
                                     math.log(1e2), math.log(1e12)))


def isoflop_plan(budgets, sizes_per_budget: int = 7, *, n_opt=None, tokens_per_param: float | None = None,
                 seq_len: int = 128, vocab_size: int = 512, batch_size: int | None = None) -> SweepPlan:
    """Plan an IsoFLOP sweep: at each budget (FLOPs), `sizes_per_budget` consecutive `size_ladder` shapes.

    The sizes are centred on the rung nearest the predicted optimum: `n_opt` (a function of C, or a pair
    (N_opt at 1e12 FLOPs, exponent a) from a pilot), else the N whose tokens per parameter is
    `tokens_per_param` (default 20) with FLOPs counted as the trainer counts them (`cl.ladder_flops_per_token`,
    not 6ND). Near the bottom of the ladder the window shifts up. batch_size (sequences per step) None takes
    `batch_size_for(budget)`; the learning rate is the trainer's `cl.default_lr`. Every run must get at least
    MIN_STEPS optimizer steps.
    """
    if isinstance(budgets, (str, bytes)) or not hasattr(budgets, "__iter__"):
        raise ValueError(f"budgets={budgets!r} must be a list of FLOP budgets, e.g. [1e11, 1e12]")
    budgets = [validate.number("budgets[]", b.item() if hasattr(b, "item") else b, hint="FLOPs, e.g. 1e12")
               for b in budgets]
    if not budgets or len(set(budgets)) != len(budgets):
        raise ValueError(f"budgets={budgets!r} must be a non-empty list of distinct FLOP budgets")
    sizes_per_budget = validate.integer("sizes_per_budget", sizes_per_budget, low=3, hint="a parabola needs 3 points")
    if batch_size is not None:
        batch_size = validate.integer("batch_size", batch_size, hint="sequences per step, or None for the budget rule")
    centre = _centre_function(n_opt, tokens_per_param, seq_len, vocab_size)
    points = []
    for budget in sorted(budgets):
        batch = batch_size or batch_size_for(budget, seq_len)
        for cfg in sizes_around(centre(budget), sizes_per_budget, seq_len=seq_len, vocab_size=vocab_size):
            point = SweepPoint(budget, cfg, batch)
            steps = point.tokens / (batch * seq_len)
            if steps < MIN_STEPS:
                raise ValueError(
                    f"budgets: {budget:.3g} FLOPs buys only {steps:.0f} steps of batch_size={batch} x "
                    f"seq_len={seq_len} for the {point.n_params:,}-parameter model; raise the budget, centre the "
                    f"sizes lower (n_opt= or tokens_per_param=) or lower batch_size (need {MIN_STEPS} steps)")
            points.append(point)
    return SweepPlan(points)


def profile_plan(profile=None, corpus: Corpus | None = None) -> SweepPlan:
    """The IsoFLOP plan of a profile (`cl.profile(...)`: name, Profile or None for $COT_LAB_PROFILE)."""
    from cot_lab.core.profiles import profile as get_profile

    p = get_profile(profile)
    centre = dict(n_opt=p.sweep_centre) if p.sweep_centre else dict(tokens_per_param=p.sweep_tokens_per_param)
    return isoflop_plan(p.sweep_budgets, p.sweep_sizes, seq_len=p.seq_len,
                        vocab_size=corpus.vocab_size if corpus is not None else 512, **centre)


@dataclass
class SweepResult:
    """The runs of a sweep (one per planned point reached, in plan order) and whether it was stopped early."""

    runs: list[Run]
    interrupted: bool = False
    wall_s: float = 0.0  # seconds the whole sweep took, store look-ups and evaluations included

    @property
    def train_s(self) -> float:
        """Seconds of pure training in runs trained now (not served from the store)."""
        return float(sum(r.train_s for r in self.runs if not r.from_store))

    @property
    def runs_s(self) -> float:
        """Seconds the runs trained now took by their own clocks (training, evaluation, saving), summed over runs."""
        return float(sum(r.wall_s for r in self.runs if not r.from_store))

    @property
    def concurrency(self) -> float:
        """Runs in flight at once, on average: runs_s / wall_s (about `workers` in parallel, just under 1 serially)."""
        return self.runs_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def train_share(self) -> float:
        """Share of the runs' own time spent in training steps: train_s / runs_s (NaN when nothing trained now).

        Not train_s / wall_s: with runs side by side their seconds add up to more than the wall time."""
        return self.train_s / self.runs_s if self.runs_s > 0 else float("nan")

    def timing(self) -> str:
        """One true sentence on where the time went: wall time, runs at a time, the training share of the runs' time."""
        trained = sum(not r.from_store for r in self.runs)
        head = f"{len(self.runs)} runs in {self.wall_s:.0f} s"
        if not trained:
            return f"{head}: all came back from the store, nothing trained now"
        return (f"{head} ({trained} trained now, {self.concurrency:.1f} at a time on average); "
                f"{self.train_share:.0%} of those runs' own {self.runs_s:.0f} s was training steps, "
                f"the rest evaluation and bookkeeping")

    def to_frame(self):
        """A pandas DataFrame, one row per run: budget, size, tokens, final validation loss (nats/token), status."""
        return runs_frame(self.runs)


def runs_frame(runs: list[Run]):
    """One row per run with the columns every scaling fit and plot here reads."""
    import pandas as pd

    rows = []
    for r in runs:
        n = r.n_params
        rows.append(dict(budget_flops=float(r.budget["value"]), n_params=n, d_model=r.config.d_model,
                         n_layer=r.config.n_layer, tokens=float(r.tokens), tokens_per_param=r.tokens / n,
                         flops=float(r.flops), final_val_loss=float(r.final_val_loss), status=r.status,
                         wall_s=float(r.wall_s), train_s=float(r.train_s), run_id=r.run_id,
                         from_store=bool(r.from_store)))
    return pd.DataFrame(rows)


def stored_points(plan: SweepPlan, corpus: Corpus, store: RunStore, *, seed: int = 0, **train_kwargs) -> set[int]:
    """Indexes of the plan's points whose run with `seed` is already finished in `store` (one indexed lookup each)."""
    return _stored_jobs(plan, [(i, seed) for i in range(len(plan))], corpus, store, **train_kwargs)


def _stored_jobs(plan: SweepPlan, jobs: list[tuple[int, int]], corpus: Corpus, store: RunStore, **train_kwargs) -> set[int]:
    from cot_lab.core.training import plan_run

    return {j for j, (i, seed) in enumerate(jobs)
            if store.get(plan_run(plan.points[i].config, corpus, flops=plan.points[i].flops,
                                  batch_size=plan.points[i].batch_size, lr=plan.points[i].lr, seed=seed,
                                  **train_kwargs).key,
                         status="ok") is not None}


def job_groups(plan: SweepPlan, jobs: list[tuple[int, int]], workers: int) -> list[list[int]]:
    """Which jobs (point, seed) train together as one batched computation (`cl.train_many`): the jobs of one
    shape, budget and batch (a point's seeds, and the points of a learning-rate sweep), when there are at least
    as many such groups as workers; else one job per group.

    Why: a group of G runs of one tiny shape costs well under G times one run, because the per-op overhead
    is shared (two seeds as one group on one core of a 2-core EPYC: 2.1x the throughput of one run at 12K
    parameters, 1.45x at 29K, 1.2x at 136K; `benchmarks/sweep_efficiency.py` times whole sweeps). But one
    group occupies one worker: with fewer groups than workers, runs on separate cores finish sooner. MoE
    points are never grouped.
    """
    by_shape: dict[tuple, list[int]] = {}
    for j, (i, _) in enumerate(jobs):
        point = plan.points[i]
        by_shape.setdefault((point.config, point.flops, point.batch_size), []).append(j)
    groups = list(by_shape.values())
    if len(groups) < workers or len(groups) == len(jobs):
        return [[j] for j in range(len(jobs))]
    out = []
    for group in groups:
        if plan.points[jobs[group[0]][0]].config.arch == "dense":
            out.append(group)
        else:
            out.extend([j] for j in group)
    return out


def run_sweep(plan: SweepPlan, corpus: Corpus, store: RunStore | None = None, *, seed: int = 0, seeds=None,
              progress: bool = True, workers: int = 1, stop=None, report=None, **train_kwargs) -> SweepResult:
    """Train every point of `plan` on `corpus` (FLOP budgets), one progress bar for all; returns a SweepResult.

    Runs already in `store` (default: `RunStore()`) return at once, so an interrupted sweep resumes.
    The Stop button (KeyboardInterrupt) ends the sweep after marking the current run(s) `interrupted`
    in the store; the finished runs are kept. seeds: a list of seeds to train every point with (default:
    `[seed]`); a point's seeds train together as one batched computation where that is faster
    (`job_groups`). `workers` > 1 trains that many runs (or groups) side by side in worker processes.
    stop: a `threading.Event` (a panel's Stop button) that ends it as an interrupt does; report:
    `report(fraction, text, force=...)` for a panel's bar. Each point trains at its own `lr` (None: the recipe's
    rate); extra keyword arguments go to `cl.train`.
    The result's runs are in plan order, each point's seeds in the order given.
    """
    from cot_lab.core.training import train, train_many  # here: cot_lab.train the function shadows the module

    if not isinstance(plan, SweepPlan):
        raise ValueError(f"plan must be a SweepPlan from cl.sweep.isoflop_plan(...) (got {type(plan).__name__})")
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus must be a cot_lab corpus from cl.load_corpus(...) (got {type(corpus).__name__})")
    workers = validate.integer("workers", workers, hint="1 = one run at a time")
    seeds = [validate.integer("seeds[]", s, low=0) for s in (seeds if seeds is not None else [seed])]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} must be a non-empty list of distinct seeds, e.g. [0, 1]")
    stop = validate_stop(stop)
    for name in ("flops", "tokens", "seconds", "callbacks", "store", "progress", "batch_size", "init", "seed", "lrs"):
        if name in train_kwargs:
            raise ValueError(f"{name}= is set by the sweep itself; remove it from run_sweep's arguments")
    if "lr" in train_kwargs:  # one rate for every point: written into the points, where each run reads its own
        lr = train_kwargs.pop("lr")
        if any(p.lr is not None for p in plan):
            raise ValueError("lr= is given and the plan's points carry their own rates; give one or the other")
        plan = SweepPlan([replace(p, lr=lr) for p in plan])
    store = RunStore() if store is None else store
    jobs = [(i, s) for i in range(len(plan)) for s in seeds]  # one run each: (point index, seed)
    groups = job_groups(plan, jobs, workers)
    bar = SweepProgress([plan.points[i].flops for i, _ in jobs], _stored_jobs(plan, jobs, corpus, store, **train_kwargs),
                         progress, report)
    runs: dict[int, Run] = {}
    interrupted, start = False, time.perf_counter()

    def finished(j: int, run: Run) -> None:
        run._model = None  # a sweep keeps records, not dozens of models; load_model() reads the store
        runs[j] = run
        bar.finish(j, run)

    try:
        if workers > 1:
            from cot_lab.core.executor import run_parallel

            def done(j: int, run_id: str, from_store: bool) -> None:
                run = store.get(run_id)
                run.from_store = from_store
                finished(j, run)

            tasks = [(plan.points[jobs[g[0]][0]], [(j, jobs[j][1], plan.points[jobs[j][0]].lr) for j in g])
                     for g in groups]
            interrupted = run_parallel(tasks, corpus, store, workers, train_kwargs, done, on_step=bar.step, stop=stop)
        else:
            for group in groups:
                point = plan.points[jobs[group[0]][0]]
                common = dict(flops=point.flops, batch_size=point.batch_size, store=store, progress=False, stop=stop,
                              **train_kwargs)
                if len(group) == 1:
                    trained = [train(point.config, corpus, seed=jobs[group[0]][1], lr=point.lr,
                                     callbacks=[bar.callback(group[0])], **common)]
                else:
                    trained = train_many(point.config, corpus, seeds=[jobs[j][1] for j in group],
                                         lrs=[plan.points[jobs[j][0]].lr for j in group],
                                         callbacks=[[bar.callback(j)] for j in group], **common)
                for j, run in zip(group, trained):
                    finished(j, run)
                if any(run.status == "interrupted" for run in trained):
                    interrupted = True
                    break
    except KeyboardInterrupt:  # between runs (e.g. while the store answered): nothing half-written to undo
        interrupted = True
    finally:
        bar.close()
    if interrupted and workers > 1:  # runs the interrupt stopped in the workers are stored as such: show them
        for j, (i, job_seed) in enumerate(jobs):
            point = plan.points[i]
            if j not in runs:
                partial = [r for r in store.runs(status="interrupted") if r.config == point.config
                           and r.budget == {"kind": "flops", "value": point.flops} and r.hparams.get("seed") == job_seed
                           and r.hparams.get("batch_size") == point.batch_size
                           and (point.lr is None or r.hparams.get("lr") == point.lr)]
                if partial:
                    runs[j] = partial[-1]
    return SweepResult([runs[j] for j in sorted(runs)], interrupted, time.perf_counter() - start)
