"""The shipped dense-vs-MoE set (precomputed/moe/): every MoE run is its dense partner with the MLP split into
experts, the comparison tables hold what the notebook says, the router study's statistics are consistent, and the
figures and the router panel read them."""
import json
import math
import shutil

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.moe import compare, plots
from cot_lab.moe.pilot import ROUTER_COEFS, ROUTER_EXPERTS, ROUTER_TOP_K, SEEDS, WINDOWS, load_moe_pilot, pilot_dir
from cot_lab.moe.router import RouterStats
from cot_lab.ui.figure_check import assert_readable


@pytest.fixture(scope="module")
def pilot():
    return load_moe_pilot()


@pytest.fixture(scope="module")
def points(pilot):
    return compare.comparison_points(pilot["isoflop"], pilot["dense"])


@pytest.fixture(scope="module")
def flops_table(points):
    return compare.matched_flops(points)


def test_every_planned_moe_run_is_there_with_both_seeds_and_trained_to_its_budget(pilot):
    planned = {(b, d, s) for b, ds in WINDOWS.items() for d in ds for s in SEEDS}
    got = {(r.budget["value"], r.config.d_model, r.hparams["seed"]) for r in pilot["isoflop"]}
    assert got == planned and len(pilot["isoflop"]) == len(planned)
    for r in pilot["isoflop"]:
        assert r.status == "ok" and r.config.arch == "moe" and r.config.d_ff % 8 == 0
        step_tokens = r.hparams["batch_size"] * r.config.seq_len
        assert r.flops == pytest.approx(r.tokens * cl.flops_per_token(r.config))
        assert r.budget["value"] - step_tokens * cl.flops_per_token(r.config) < r.flops <= r.budget["value"]


def test_each_moe_run_is_its_dense_partner_with_the_mlp_split_into_experts(pilot):
    dense = {(r.budget["value"], r.config.d_model, r.hparams["seed"]): r for r in pilot["dense"]}
    for moe in pilot["isoflop"]:
        partner = dense[(moe.budget["value"], moe.config.d_model, moe.hparams["seed"])]
        assert moe.config.replace(arch="dense", d_ff=partner.config.d_ff, n_experts=partner.config.n_experts,
                                  top_k=partner.config.top_k) == partner.config
        assert (moe.config.n_experts, moe.config.top_k) == (8, 2)
        assert moe.corpus_fingerprint == partner.corpus_fingerprint and moe.precision == partner.precision
        for name in ("batch_size", "lr", "warmup", "min_lr_ratio", "weight_decay", "grad_clip", "beta2",
                     "eval_sequences", "attention"):
            assert moe.hparams[name] == partner.hparams[name], name
        assert moe.hparams["aux_loss_coef"] == 1e-2
        assert abs(cl.flops_per_token(moe.config) / cl.flops_per_token(partner.config) - 1) < 0.021


def test_both_parabolas_have_their_vertex_inside_the_rungs_at_every_budget(flops_table):
    assert flops_table.dense_interior.all() and flops_table.moe_interior.all(), flops_table


def test_the_difference_and_its_interval_are_consistent(flops_table):
    for _, row in flops_table.iterrows():
        assert row.difference == pytest.approx(row.moe_L_opt - row.dense_L_opt)
        assert row.difference_lo < row.difference < row.difference_hi
        assert row.winner == ("moe" if row.difference_hi < 0 else "dense" if row.difference_lo > 0 else "tie")
        assert 3.0 < row.moe_L_opt < 3.6 and 3.0 < row.dense_L_opt < 3.6  # above the language's floor (~2.98)


def test_the_laws_and_multipliers_are_finite_and_agree_in_sign_with_the_measurements(points, flops_table):
    laws = compare.fit_laws(points)
    effective = compare.effective_parameters(points, laws["dense"])
    best = effective.loc[effective.groupby("budget_flops").loss.idxmin()]
    cost = cl.ladder_flops_per_token(128, 512)
    for (_, row), (_, flops_row) in zip(best.iterrows(), flops_table.iterrows()):
        multiplier = compare.compute_multiplier(laws["dense"], row.loss, row.budget_flops, cost)
        assert 0 < multiplier and 0 < row.multiplier
        # a MoE point below the dense law's frontier is worth more than its budget, and vice versa
        frontier = laws["dense"].optimal_loss(row.budget_flops, flops_per_token=cost)
        assert (multiplier > 1) == (row.loss < frontier)


def test_matched_memory_compares_with_a_dense_model_no_larger_than_the_moe(points):
    table = compare.matched_memory(points)
    assert len(table) == len(WINDOWS)
    for _, row in table.iterrows():
        assert row.dense_N_total <= row.memory_params * (1 + 1e-9)
        assert row.difference == pytest.approx(row.moe_loss - row.dense_loss)
        assert row.winner == compare.verdict(row.moe_loss, row.dense_loss, compare.seed_noise(points))
        assert row.winner == "tie" or abs(row.difference) > row.noise > 0.001


def test_wall_clock_uses_the_measured_ratio(pilot, points, flops_table):
    timing = pilot["measured"]["training"]
    assert all(t["experts_implementation"] == "grouped_mm" and t["moe_over_dense"] > 0.5 for t in timing)
    wall = compare.matched_wall_clock(points, timing, flops_table)
    ratios = {t["moe_over_dense"] for t in timing}
    assert set(wall.time_ratio) <= ratios
    assert np.allclose(wall.moe_flops, wall.budget_flops / wall.time_ratio)


def test_serving_memory_holds_every_expert(pilot):
    for row in pilot["measured"]["serving"]:
        for arch in ("dense", "moe"):
            m = row[arch]
            assert m["memory_bytes"] == 4 * m["total_params"]  # fp32, tied embedding once
            assert m["weight_bytes_per_step"] < m["memory_bytes"] or arch == "dense"
            assert all(v > 0 for v in m["decode_tokens_per_s"].values())
        dense = next(r.config for r in pilot["dense"] if r.config.d_model == row["d_model"])
        moe = next(r.config for r in pilot["isoflop"] if r.config.d_model == row["d_model"])
        # every expert's three matrices and the router held, against one dense MLP
        extra = moe.n_layer * (3 * moe.d_model * (moe.n_experts * moe.d_ff - dense.d_ff) + moe.d_model * moe.n_experts)
        assert row["moe"]["total_params"] - row["dense"]["total_params"] == extra


def test_the_router_study_covers_the_grid_and_its_counts_add_up(pilot):
    keys = {(s["n_experts"], s["top_k"], s["aux_loss_coef"]) for s in pilot["router"]}
    assert keys == {(e, k, c) for e in ROUTER_EXPERTS for k in ROUTER_TOP_K for c in ROUTER_COEFS}
    for study in pilot["router"]:
        assert study["run"].status == "ok" and len(study["history"]) >= 3
        for record in study["history"]:
            stats = RouterStats.from_record(record)
            assert (stats.counts.sum(axis=1) == stats.tokens * study["top_k"]).all()
            assert np.allclose(stats.mean_prob.sum(axis=1), 1.0, atol=1e-6)
            assert stats.transformers_aux_loss() == pytest.approx(stats.hf_aux_loss, rel=1e-4)
            assert (stats.balance_loss <= study["n_experts"] + 1e-9).all()  # sum f_i P_i <= max P_i <= 1
        assert study["history"][-1]["trained_tokens"] == study["run"].tokens


def test_the_balance_loss_coefficient_balances_the_router(pilot):
    """Averaged over the six expert / top-k settings: the Switch coefficient 1e-2 ends with a lower balance loss
    than no balance loss at all."""
    final = {c: [] for c in ROUTER_COEFS}
    for study in pilot["router"]:
        final[study["aux_loss_coef"]].append(float(np.mean(study["history"][-1]["balance_loss"])))
    assert np.mean(final[1e-2]) < np.mean(final[0.0])


def test_a_tampered_file_fails_its_checksum(tmp_path):
    copy = tmp_path / "moe"
    shutil.copytree(pilot_dir(), copy)
    data = json.loads((copy / "router.json").read_text())
    data["flops"] = 1.0
    (copy / "router.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="router.json does not match its manifest"):
        load_moe_pilot(copy)


def test_the_figures_are_readable(pilot, points, flops_table):
    assert_readable(plots.isoflop_comparison(points, flops_table))
    assert_readable(plots.memory_comparison(points, compare.matched_memory(points)))
    timing = pilot["measured"]["training"]
    assert_readable(plots.wall_clock_comparison(timing, compare.matched_wall_clock(points, timing, flops_table)))
    study = pilot["router"][0]
    assert_readable(plots.router_load(study["history"], n_experts=study["n_experts"],
                                      others={"another": pilot["router"][1]["history"]}))
    assert_readable(plots.serving_tradeoff(pilot["measured"]["serving"]))
    with pytest.raises(ValueError, match="history is empty"):
        plots.router_load([], n_experts=8)


def test_the_router_panel_moves_between_shipped_runs_and_trains_one(pilot, tmp_path):
    from cot_lab.moe.panel import RouterPanel

    corpus = cl.load_corpus("synthetic-v3")
    panel = RouterPanel(pilot["router"], corpus, cl.RunStore(tmp_path / "store"), flops=2e9, every=5)
    first = panel.set(n_experts=4, top_k=1, coef=0.0)
    image = panel.plot.outputs[0]["data"]["image/png"]
    second = panel.set(n_experts=16)
    assert (first["n_experts"], second["n_experts"]) == (4, 16)
    assert panel.plot.outputs[0]["data"]["image/png"] != image
    study = next(s for s in pilot["router"] if (s["n_experts"], s["top_k"], s["aux_loss_coef"]) == (16, 1, 0.0))
    assert second["loss"] == study["run"].final_val_loss
    assert second["balance_loss"] == pytest.approx(np.mean(study["history"][-1]["balance_loss"]))
    run, history = panel.train()
    assert run.status == "ok" and run.config.n_experts == 16 and len(history) >= 2
    assert math.isfinite(run.final_val_loss)
    with pytest.raises(ValueError, match="studies is empty"):
        RouterPanel([], corpus)
