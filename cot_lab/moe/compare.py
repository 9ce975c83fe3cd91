"""Dense against MoE, three ways: at matched active FLOPs, at matched memory (total parameters), at matched wall-clock.

The runs: at every budget, MoE partners of four of the dense sweep's ladder rungs (the same attention, width, depth,
batch, learning rate, seeds and language; only the MLP is split into experts). Units: N parameters (N_active: what
one token passes through, the router included; N_total: every expert), D training tokens, C training FLOPs as the
trainer counts them (Hoffmann et al. 2022, arXiv 2203.15556, App. F, active parameters for MoE), losses in nats/token.

- Matched FLOPs: per budget, each architecture's IsoFLOP parabola in log N_active (Hoffmann et al.'s Approach 2)
  over the same four rungs; its vertex is the best loss that budget buys. Intervals: a parametric bootstrap that
  moves each point's seed mean by its architecture's pooled seed-to-seed spread.
- A law for each (Approach 3, L = E + A/N^alpha + B/D^beta with N = N_active), and from the dense law two ways to
  say what the experts are worth: the effective-parameter multiplier (Clark et al. 2022, arXiv 2202.01169: the dense
  size that reaches the MoE's loss on the same tokens, over the MoE's active size) and the compute multiplier (the
  dense compute whose compute-optimal loss equals the MoE's).
- Matched memory: a memory limit is a limit on N_total. The MoE's best run against the best dense model that fits
  in the same number of parameters (its parabola in log N_total, minimised up to that limit).
- Matched wall-clock: a training step of each is timed on this machine (`measure.py`); at equal seconds the MoE
  gets C / r FLOPs, r = its time per token over dense's at the same rung. Its vertex loss at C / r is interpolated
  in log C between its budgets (marked when extrapolated).
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from cot_lab.core.accounting import active_params, count_params, flops_per_token

CONFIDENCE = 0.9


def comparison_points(moe_runs, dense_runs):
    """One row per (arch, budget, shape): N_active, N_total, tokens, flops_per_token, the seed-mean loss, seed_sd and
    n_seeds; `in_window` marks the dense rungs an MoE partner was trained at (the like-for-like parabola)."""
    import pandas as pd

    rows: dict[tuple, dict] = {}
    for arch, runs in (("moe", moe_runs), ("dense", dense_runs)):
        for r in runs:
            if r.status != "ok" or not math.isfinite(r.final_val_loss):
                continue
            key = (arch, float(r.budget["value"]), r.config)
            row = rows.setdefault(key, dict(arch=arch, budget_flops=key[1], d_model=r.config.d_model,
                                            n_layer=r.config.n_layer, N_active=active_params(r.config),
                                            N_total=count_params(r.config).total, tokens=float(r.tokens),
                                            flops_per_token=flops_per_token(r.config), losses=[]))
            row["losses"].append(float(r.final_val_loss))
    out = []
    for row in rows.values():
        losses = np.array(row.pop("losses"))
        out.append({**row, "loss": float(losses.mean()), "n_seeds": len(losses),
                    "seed_sd": float(losses.std(ddof=1)) if len(losses) > 1 else np.nan})
    frame = pd.DataFrame(out).sort_values(["arch", "budget_flops", "N_active"]).reset_index(drop=True)
    window = {(b, d) for b, d in zip(frame.budget_flops[frame.arch == "moe"], frame.d_model[frame.arch == "moe"])}
    frame["in_window"] = [a == "moe" or (b, d) in window for a, b, d in zip(frame.arch, frame.budget_flops, frame.d_model)]
    return frame


def pooled_seed_sd(points, arch: str) -> float:
    """One run's seed-to-seed standard deviation of loss (nats/token) for `arch`, pooled over its points."""
    multi = points[(points.arch == arch) & (points.n_seeds > 1)]
    if multi.empty:
        return float("nan")
    return float(np.sqrt((multi.seed_sd ** 2 * (multi.n_seeds - 1)).sum() / (multi.n_seeds - 1).sum()))


def seed_noise(points) -> float:
    """Half-width (nats/token) of a 90% normal interval on MoE minus dense from seed noise alone: 1.645 x
    sqrt(sd_moe^2 / n_moe + sd_dense^2 / n_dense), each sd pooled over its architecture's points and n its seeds
    per point; 0 when a side has one seed (no spread measured)."""
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    total = 0.0
    for arch in ("dense", "moe"):
        sd = pooled_seed_sd(points, arch)
        if not math.isfinite(sd):
            return 0.0
        total += sd ** 2 / float(np.median(points.n_seeds[points.arch == arch]))
    return z * math.sqrt(total)


def verdict(moe_loss: float, dense_loss: float, noise: float) -> str:
    """"moe" or "dense", whichever is lower by more than `noise` (nats/token), else "tie"."""
    if moe_loss < dense_loss - noise:
        return "moe"
    return "dense" if moe_loss > dense_loss + noise else "tie"


def vertex(log_n, loss) -> tuple[float, float]:
    """(log N, loss) at the minimum of the parabola through (log N, loss); NaNs when it opens downwards."""
    c2, c1, c0 = np.polyfit(log_n, loss, 2)
    if c2 <= 0:
        return float("nan"), float("nan")
    x = -c1 / (2 * c2)
    return float(x), float(c0 - c1 * c1 / (4 * c2))


def _interval(samples) -> tuple[float, float]:
    tail = 50.0 * (1.0 - CONFIDENCE)
    samples = np.asarray(samples, float)
    samples = samples[np.isfinite(samples)]
    return tuple(float(q) for q in np.percentile(samples, [tail, 100 - tail])) if samples.size else (np.nan, np.nan)


def matched_flops(points, *, bootstrap: int = 2000, seed: int = 0):
    """Per budget: each architecture's vertex (N_opt active, L_opt) over the same rungs, MoE - dense with its 90%
    interval, the best measured points, and the winner (the one lower, when the interval excludes 0)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    sd = {arch: pooled_seed_sd(points, arch) for arch in ("dense", "moe")}
    rows = []
    for budget in sorted(points.budget_flops[points.arch == "moe"].unique()):
        row = dict(budget_flops=budget)
        draws = {}
        for arch in ("dense", "moe"):
            p = points[(points.arch == arch) & (points.budget_flops == budget) & points.in_window]
            log_n, loss = np.log(p.N_active.to_numpy(float)), p.loss.to_numpy(float)
            x, low = vertex(log_n, loss)
            noise = rng.normal(0.0, 1.0, (bootstrap, len(p))) * sd[arch] / np.sqrt(p.n_seeds.to_numpy(float))
            draws[arch] = np.array([_interior_vertex(log_n, loss + e) for e in noise])
            best = p.loc[p.loss.idxmin()]
            row.update({f"{arch}_N_opt": math.exp(x) if math.isfinite(x) else np.nan, f"{arch}_L_opt": low,
                        f"{arch}_interior": bool(log_n.min() <= x <= log_n.max()),
                        f"{arch}_best_loss": float(best.loss), f"{arch}_best_d_model": int(best.d_model)})
        diff = draws["moe"] - draws["dense"]
        lo, hi = _interval(diff)
        row.update(difference=row["moe_L_opt"] - row["dense_L_opt"], difference_lo=lo, difference_hi=hi,
                   winner="moe" if hi < 0 else "dense" if lo > 0 else "tie")
        rows.append(row)
    return pd.DataFrame(rows)


def _interior_vertex(log_n, loss) -> float:
    x, low = vertex(log_n, loss)
    return low if math.isfinite(x) and log_n.min() <= x <= log_n.max() else np.nan


def fit_laws(points, **kwargs) -> dict:
    """{"dense", "moe"}: a ScalingLaw (Approach 3) fitted to each architecture's seed means, N = N_active."""
    from cot_lab.scaling.fit import fit_scaling_law

    return {arch: fit_scaling_law(p.N_active.to_numpy(float), p.tokens.to_numpy(float), p.loss.to_numpy(float), **kwargs)
            for arch, p in points.groupby("arch")}


def dense_size_for(law, loss: float, tokens: float) -> float:
    """The N (parameters) at which `law` reaches `loss` on `tokens` tokens; inf when no size does (the loss is at or
    below the law's floor E + B / D^beta for that many tokens)."""
    gap = loss - law.E - law.B / tokens ** law.beta
    return float((law.A / gap) ** (1.0 / law.alpha)) if gap > 0 else math.inf


def effective_parameters(points, dense_law):
    """Per MoE point: N_eff, the dense size reaching its loss on its tokens (by `dense_law`), and N_eff / N_active,
    the effective-parameter multiplier (Clark et al. 2022)."""
    moe = points[points.arch == "moe"].copy()
    moe["N_effective"] = [dense_size_for(dense_law, l, d) for l, d in zip(moe.loss, moe.tokens)]
    moe["multiplier"] = moe.N_effective / moe.N_active
    return moe[["budget_flops", "d_model", "N_active", "N_total", "tokens", "loss", "N_effective", "multiplier"]]


def compute_multiplier(dense_law, loss: float, flops: float, flops_per_token) -> float:
    """C' / C: the training FLOPs at which `dense_law`'s compute-optimal loss (FLOPs counted by `flops_per_token`,
    a function of N) equals `loss`, over `flops`; inf when the law never gets that low."""
    from scipy.optimize import brentq

    def gap(log_c):
        return dense_law.optimal_loss(math.exp(log_c), flops_per_token=flops_per_token) - loss

    lo, hi = math.log(flops) - math.log(1e3), math.log(flops) + math.log(1e4)
    if gap(hi) > 0:
        return math.inf
    if gap(lo) < 0:
        return 0.0
    return math.exp(brentq(gap, lo, hi, xtol=1e-6)) / flops


def matched_memory(points):
    """Per budget: the MoE's best run (seed mean) and its N_total, against the best dense model with at most that
    many parameters (the dense parabola in log N_total, minimised up to the limit), MoE - dense, and the winner
    (`verdict` with `seed_noise`: "tie" within seed noise); when no dense rung of the sweep is that small,
    dense_loss is NaN and the MoE wins by default (nothing else fits)."""
    import pandas as pd

    noise = seed_noise(points)
    rows = []
    for budget in sorted(points.budget_flops[points.arch == "moe"].unique()):
        moe = points[(points.arch == "moe") & (points.budget_flops == budget)]
        best = moe.loc[moe.loss.idxmin()]
        dense = points[(points.arch == "dense") & (points.budget_flops == budget)]
        log_n = np.log(dense.N_total.to_numpy(float))
        row = dict(budget_flops=budget, memory_params=int(best.N_total), moe_loss=float(best.loss),
                   moe_d_model=int(best.d_model))
        if math.log(best.N_total) < log_n.min():  # no dense rung of the sweep fits: nothing to compare with
            rows.append(dict(row, dense_loss=np.nan, dense_N_total=np.nan, dense_limited=True, difference=np.nan,
                             noise=noise, winner="moe"))
            continue
        coefficients = np.polyfit(log_n, dense.loss.to_numpy(float), 2)
        grid = np.linspace(log_n.min(), min(log_n.max(), math.log(best.N_total)), 400)
        values = np.polyval(coefficients, grid)
        i = int(np.argmin(values))
        rows.append(dict(row, dense_loss=float(values[i]), dense_N_total=float(math.exp(grid[i])),
                         dense_limited=bool(i == len(grid) - 1), difference=float(best.loss - values[i]), noise=noise,
                         winner=verdict(float(best.loss), float(values[i]), noise)))
    return pd.DataFrame(rows)


def matched_wall_clock(points, timing, flops_table):
    """Per budget: dense's vertex loss at C FLOPs against the MoE's at C / r FLOPs, the same seconds on this machine
    (r: the MoE's time per token over dense's, measured at the rung nearest dense's vertex), MoE - dense, and the
    winner ("tie" within `seed_noise`). `flops_table` is `matched_flops(points)`; `timing` the measured rows
    (d_model, moe_over_dense)."""
    import pandas as pd

    noise = seed_noise(points)
    ratios = {int(t["d_model"]): float(t["moe_over_dense"]) for t in timing}
    rungs = np.array(sorted(ratios))
    log_c = np.log(flops_table.budget_flops.to_numpy(float))
    moe_l = flops_table.moe_L_opt.to_numpy(float)
    rows = []
    for _, row in flops_table.iterrows():
        dense = points[(points.arch == "dense") & (points.budget_flops == row.budget_flops) & points.in_window]
        nearest = dense.iloc[int(np.argmin(np.abs(np.log(dense.N_active.to_numpy(float)) - math.log(row.dense_N_opt))))]
        r = ratios[int(rungs[np.argmin(np.abs(rungs - nearest.d_model))])]
        c = row.budget_flops / r
        slope_at = 0 if math.log(c) < log_c[0] else len(log_c) - 2 if math.log(c) > log_c[-1] else None
        if slope_at is None:
            loss = float(np.interp(math.log(c), log_c, moe_l))
        else:
            i = slope_at
            loss = float(moe_l[i] + (moe_l[i + 1] - moe_l[i]) * (math.log(c) - log_c[i]) / (log_c[i + 1] - log_c[i]))
        rows.append(dict(budget_flops=row.budget_flops, time_ratio=r, moe_flops=c, dense_loss=row.dense_L_opt,
                         moe_loss=loss, extrapolated=slope_at is not None, difference=loss - row.dense_L_opt,
                         noise=noise, winner=verdict(loss, row.dense_L_opt, noise)))
    return pd.DataFrame(rows)
