"""Figures of notebook 02: IsoFLOP curves, the compute-optimal frontier, exponents with intervals, predictions.

Each function returns a matplotlib Figure (not pyplot: nothing global changes). Units: N total
parameters, C training FLOPs, losses in nats/token.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from cot_lab.ui.figures import FLOOR_COLOUR, log_scale

KEY_COLOUR = "#777777"  # legend entries that explain a kind of mark drawn in every budget's colour

# The band `exponents` draws: a = 0.5 +- 0.15, centred on the compute-optimal exponents of Hoffmann et al.
# 2022, Table 2 (arXiv 2203.15556: 0.46 to 0.50 by three approaches) and the Epoch refit of their data
# (Besiroglu et al. 2024, arXiv 2404.10102: 0.513), widened because a small sweep's exponent moves with its
# recipe (Porian et al. 2024, arXiv 2406.19146). Kaplan et al. 2020's 0.73 lies outside it. The shipped
# laptop sweep is tested to land in it (tests/test_precomputed.py).
CHINCHILLA_LIKE = (0.35, 0.65)


def _log_axes(ax, xlabel: str, ylabel: str, title: str | None = None, *, log_y: bool = False,
              legend_outside: bool = False) -> None:
    """Log x (and optionally y) axes with labels, a light grid and a small legend (beside the axes, where
    it can hide no point, when `legend_outside`)."""
    log_scale(ax, "xy" if log_y else "x")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    if legend_outside:
        ax.figure.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    else:
        ax.legend(fontsize=8)


def _budget_groups(runs) -> dict[float, list]:
    groups: dict[float, list] = {}
    for r in runs:
        if r.status == "ok" and np.isfinite(r.final_val_loss):
            groups.setdefault(float(r.budget["value"]), []).append(r)
    return {c: sorted(g, key=lambda r: r.n_params) for c, g in sorted(groups.items())}


def isoflop_curves(runs, fit=None, *, floor: float | None = None, extra_runs=(), title: str | None = None) -> Figure:
    """Final loss against model size, one colour per FLOP budget, with each budget's Approach 2 parabola and vertex.

    `extra_runs` (e.g. the live sweep's runs) are drawn as open markers in their budget's colour.
    """
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    groups = _budget_groups(runs)
    a2 = fit.approach2 if fit is not None else None
    for i, (c, group) in enumerate(groups.items()):
        colour = f"C{i % 10}"
        n = np.array([r.n_params for r in group], float)
        loss = np.array([r.final_val_loss for r in group], float)
        ax.plot(n, loss, "o", color=colour, label=f"C = {c:.2g} FLOPs")
        if len(n) >= 3:
            coef = np.polyfit(np.log(n), loss, 2)
            grid = np.geomspace(n.min(), n.max(), 100)
            ax.plot(grid, np.polyval(coef, np.log(grid)), "-", color=colour, alpha=0.6)
        if a2 is not None:
            j = int(np.argmin(np.abs(np.log(a2["C"] / c))))
            if a2["interior"][j]:
                ax.plot(a2["N_opt"][j], a2["L_opt"][j], "*", color=colour, markersize=13, markeredgecolor="k")
    extra = [r for r in extra_runs if r.status == "ok" and np.isfinite(r.final_val_loss)]
    for r in extra:
        budgets = list(groups)
        i = int(np.argmin([abs(np.log(b / r.budget["value"])) for b in budgets])) if budgets else 0
        ax.plot(r.n_params, r.final_val_loss, "o", mfc="none", color=f"C{i % 10}", markersize=10)
    # Colour names the budget; these grey entries name what each kind of mark means in every colour.
    if any(len(g) >= 3 for g in groups.values()):
        ax.plot([], [], "-", color=KEY_COLOUR, alpha=0.6, label="parabola in log N through a budget's runs")
    if a2 is not None and any(a2["interior"]):
        ax.plot([], [], "*", color=KEY_COLOUR, markersize=13, markeredgecolor="k",
                label="its minimum: that budget's best size")
    if extra:
        ax.plot([], [], "o", mfc="none", color=KEY_COLOUR, markersize=10, label="extra runs (open circles)")
    if floor is not None:
        ax.axhline(floor, color=FLOOR_COLOUR, linestyle="--", linewidth=1.2, label=f"entropy floor {floor:.3f}")
    _log_axes(ax, "parameters N", "final validation loss (nats/token)",
              title or "IsoFLOP curves: one best size per budget (stars)", legend_outside=True)
    return fig


def frontier(fit, *, extend_to: float | None = None, reference_exponents=(("Chinchilla a=0.5", 0.5),
                                                                           ("Kaplan a=0.73", 0.73))) -> Figure:
    """N_opt against C from all three approaches, with published exponents drawn through our middle budget.

    Published prefactors belong to other data and tokenizers, so only the slopes are comparable:
    the reference lines share our Approach 3 N_opt at the geometric middle of the budgets.
    """
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    law = fit.approach3
    c_lo, c_hi = min(fit.budgets), max(fit.budgets + [extend_to or 0.0])
    grid = np.geomspace(c_lo / 2, c_hi * 1.5, 100)
    n3 = fit.optimal(grid)[0]  # FLOPs counted as the runs were (the trainer's count), not 6ND
    lo3, hi3 = law.intervals.get("a", (np.nan, np.nan))
    ax.plot(grid, n3, "-", color="C2", linewidth=2,
            label=f"Approach 3 (fit): a = {law.a:.2f}" + (f" [{lo3:.2f}, {hi3:.2f}]" if np.isfinite(lo3) else ""))
    if fit.approach2 is not None:
        a2 = fit.approach2
        used = a2["used"]
        iv = a2.get("a_interval", (np.nan, np.nan))
        ax.plot(a2["C"][used], a2["N_opt"][used], "*", color="C1", markersize=12, markeredgecolor="k",
                label=f"Approach 2 (parabola minima): a = {a2['a']:.2f}" + (f" [{iv[0]:.2f}, {iv[1]:.2f}]" if np.isfinite(iv[0]) else ""))
        ax.plot(grid, a2["k"] * grid ** a2["a"], "--", color="C1", alpha=0.7,
                label="Approach 2: power law through the minima")
    if fit.approach1 is not None:
        a1 = fit.approach1
        ax.plot(a1["C"], a1["N"], "-", color="C0", alpha=0.5, drawstyle="steps-post",
                label=f"Approach 1 (envelope of curves): a = {a1['a']:.2f}")
    mid = float(np.sqrt(grid[0] * grid[-1]))
    n_mid = float(fit.optimal(mid)[0])
    for i, (name, a) in enumerate(reference_exponents):
        ax.plot(grid, n_mid * (grid / mid) ** a, ":", color=f"C{4 + i}", label=f"slope of {name}")
    _log_axes(ax, "training compute C (FLOPs)", "compute-optimal parameters N_opt",
              "The compute-optimal frontier: N_opt ∝ C^a", log_y=True, legend_outside=True)
    return fig


def exponents(fit) -> Figure:
    """The exponent a (N_opt ∝ C^a) of each approach here and of the published fits, with intervals."""
    table = fit.exponents()
    fig = Figure(figsize=(6.8, 0.45 * len(table) + 2.0), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(table))[::-1]
    confidence = fit.approach3.confidence
    ours = f"{100 * confidence:.0f}% bootstrap" if confidence else "bootstrap"
    first = {"interval": True, "estimate": True}
    for yi, row in zip(y, table.itertuples()):
        colour = "C2" if row.source.startswith("this sweep") else "C7"
        if np.isfinite(row.a_low):  # drawn as a bar, not error bars: a rounded published value can sit outside it
            ax.plot([row.a_low, row.a_high], [yi, yi], "-|", color=colour, linewidth=2, markersize=10,
                    label=f"interval (this sweep: {ours}; H22: 10th-90th percentile)" if first["interval"] else "_nolegend_")
            first["interval"] = False
        ax.plot(row.a, yi, "o", color=colour, label="estimate (green: this sweep; grey: published)"
                if first["estimate"] else "_nolegend_")
        first["estimate"] = False
    low, high = CHINCHILLA_LIKE
    ax.axvspan(low, high, color="C2", alpha=0.07,
               label=f"{low}–{high}: Chinchilla-like, around Hoffmann et al. 2022's a ≈ 0.5")
    ax.set_yticks(y, table["source"], fontsize=8)
    ax.set_xlabel("a in N_opt ∝ C^a")
    ax.set_title("How parameters should grow with compute")
    ax.grid(alpha=0.3, axis="x")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize=8)
    return fig


def size_at_budget(law, flops: float, sizes, tokens, *, chosen: float | None = None, measured=(),
                   floor: float | None = None) -> Figure:
    """The law's predicted loss against model size at one budget, with measured runs at that budget as dots.

    `sizes` are candidate parameter counts and `tokens` what `flops` buys each of them.
    """
    order = np.argsort(np.asarray(sizes, float))
    sizes, tokens = np.asarray(sizes, float)[order], np.asarray(tokens, float)[order]
    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(sizes, law.loss(sizes, tokens), "-", color="C2", label=f"law at C = {flops:.2g} FLOPs")
    if chosen is not None:
        i = int(np.argmin(np.abs(np.log(sizes / chosen))))
        ax.plot(sizes[i], law.loss(sizes[i], tokens[i]), "D", color="C2", markersize=9, label="your size (predicted)")
    for r in measured:
        if r.status == "ok" and np.isfinite(r.final_val_loss):
            ax.plot(r.n_params, r.final_val_loss, "o", color="C3", markersize=8)
    if measured:
        ax.plot([], [], "o", color="C3", label="trained (measured)")
    if floor is not None:
        ax.axhline(floor, color=FLOOR_COLOUR, linestyle="--", linewidth=1.2, label=f"entropy floor {floor:.3f}")
    _log_axes(ax, "parameters N", "loss (nats/token)")
    return fig


def prediction_check(law, runs, holdout_runs=(), predicted: float | None = None) -> Figure:
    """Measured against predicted loss for every fitted run, and the held-out runs outside the fit (red stars: each
    seed, and their mean)."""
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.add_subplot()
    ok = [r for r in runs if r.status == "ok" and np.isfinite(r.final_val_loss)]
    pred = np.array([law.loss(r.n_params, r.tokens) for r in ok])
    meas = np.array([r.final_val_loss for r in ok])
    ax.plot(pred, meas, "o", color="C0", alpha=0.7, label="sweep runs (in the fit)")
    held = [r.final_val_loss for r in holdout_runs if r.status == "ok"]
    if held and predicted is not None:
        mean = float(np.mean(held))
        ax.plot([predicted] * len(held), held, "x", color="C3", markersize=8, label="held-out budget: each seed")
        ax.plot(predicted, mean, "*", color="C3", markersize=16, markeredgecolor="k",
                label=f"held-out budget, mean of {len(held)}: {100 * (mean / predicted - 1):+.1f}%")
        pred = np.append(pred, predicted)
        meas = np.append(meas, held)
    lo, hi = min(pred.min(), meas.min()), max(pred.max(), meas.max())
    line = np.array([lo, hi])
    ax.plot(line, line, "-", color="k", linewidth=0.8, label="perfect prediction")
    ax.fill_between(line, line * 0.97, line * 1.03, color="k", alpha=0.08, label="±3%")
    ax.set_xlabel("predicted loss (nats/token)")
    ax.set_ylabel("measured loss (nats/token)")
    ax.set_title("Does the law predict?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def skills_by_budget(excess, *, title: str | None = None) -> Figure:
    """Stacked excess loss per skill (nats/token) of the best run of each budget: which skills more compute buys.

    excess: a DataFrame, one row per budget (FLOPs, the index), one column per skill
    (`cot_lab.scaling.pilot.skills_by_budget`); the stack's height is the run's loss minus the floor.
    """
    order = excess.iloc[0].sort_values(ascending=False).index  # the biggest gap at the smallest budget at the bottom
    import matplotlib

    fig = Figure(figsize=(10.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    budgets = excess.index.to_numpy(float)
    palette = matplotlib.colormaps["tab20"].colors  # 20 distinct colours: a skill never shares one
    ax.stackplot(budgets, [excess[c].clip(lower=0).to_numpy() for c in order], labels=list(order),
                 colors=[palette[i % len(palette)] for i in range(len(order))], alpha=0.9)
    log_scale(ax)
    ax.set_xlabel("training compute C (FLOPs)")
    ax.set_ylabel("excess loss above the floor (nats/token)")
    ax.set_title(title or "Which skills each budget buys (best run of each budget)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="outside right upper")
    return fig


def recipe_pilot(pilot: dict) -> Figure:
    """The recipe pilot: loss against learning rate at three widths for both beta2 (left), and per batch (right).

    Each curve's best rate (the vertex of a parabola in log rate through its lowest three points) is a star."""
    from cot_lab.scaling.recipe_pilot import SWEEP_BATCH, best_lr

    fig = Figure(figsize=(10.5, 4.0), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    rows = pilot["runs"]
    widths = sorted({r["d_model"] for r in rows})
    for i, d in enumerate(widths):
        for b2, style in ((0.95, "--"), (0.99, "-")):
            curve = sorted((r["lr"], r["final_val_loss"]) for r in rows
                           if r["d_model"] == d and r["beta2"] == b2 and r["batch_size"] == SWEEP_BATCH)
            if not curve:
                continue
            lrs, losses = zip(*curve)
            n = next(r["n_params"] for r in rows if r["d_model"] == d)
            left.plot(lrs, losses, style, marker="o", markersize=4, color=f"C{i}",
                      label=f"d_model {d} ({n / 1e3:.0f}K), beta2 {b2}")
            lr, loss, interior = best_lr(lrs, losses)
            if interior:
                left.plot(lr, loss, "*", color=f"C{i}", markersize=12, markeredgecolor="k")
    batches = sorted({r["batch_size"] for r in rows})
    best_b2 = max({r["beta2"] for r in rows if r["batch_size"] != SWEEP_BATCH} or {0.99})
    width = next((r["d_model"] for r in rows if r["batch_size"] != SWEEP_BATCH), widths[len(widths) // 2])
    for i, b in enumerate(batches):
        curve = sorted((r["lr"], r["final_val_loss"]) for r in rows
                       if r["batch_size"] == b and r["d_model"] == width and r["beta2"] == best_b2)
        if len(curve) < 2:
            continue
        lrs, losses = zip(*curve)
        right.plot(lrs, losses, "-", marker="o", markersize=4, color=f"C{i + 4}",
                   label=f"{b} sequences ({b * 128} tokens) per step")
        lr, loss, interior = best_lr(lrs, losses)
        if interior:
            right.plot(lr, loss, "*", color=f"C{i + 4}", markersize=12, markeredgecolor="k")
    for ax in (left, right):
        ax.plot([], [], "*", color=KEY_COLOUR, markersize=12, markeredgecolor="k",
                label="best rate: vertex of a parabola in log rate")
    budget = pilot["budget"]
    _log_axes(left, "peak learning rate", "final loss (nats/token)",
              f"Learning rate by width, batch {SWEEP_BATCH} ({budget:.0e} FLOPs)")
    _log_axes(right, "peak learning rate", "", f"Batch, rate re-tuned (d_model {width}, beta2 {best_b2})")
    return fig
