"""Pruning, quantization, recovery and their measurements, on a tiny model trained once (seeded) per module.

The model: d_model 64, 2 layers, 4 heads, 64-token context, 1e11 FLOPs on the synthetic corpus
(about 5 s on 2 CPU cores); its validation loss is about 4.1 nats/token (ln 512 = 6.24, floor 3.07).
No assertion depends on machine speed: latencies are only checked to be positive and finite.
"""
import copy
import math
import subprocess
import sys

import pytest
import torch

import cot_lab as cl
from cot_lab import compress as C
from cot_lab.compress.targets import block_linears
from cot_lab.ui.figure_check import assert_readable

CFG = dict(d_model=64, n_layer=2, n_head=4, seq_len=64)
EVAL = 64  # validation sequences behind every loss here
INT8_TOLERANCE = 0.02  # nats/token: int8 (per-row weights, per-token activations) must stay this close to fp32


@pytest.fixture(scope="module")
def trained(synthetic):
    cfg = cl.ModelConfig(vocab_size=synthetic.vocab_size, **CFG)
    run = cl.train(cfg, synthetic, flops=1e11, seed=0, batch_size=16, eval_sequences=32, progress=False)
    assert run.status == "ok"
    return run.load_model()


def fresh(model):
    return copy.deepcopy(model)


def loss(model, corpus):
    return cl.evaluate_loss(model, corpus, n_sequences=EVAL)


def block_params(model) -> int:
    return sum(lin.weight.numel() for _, _, lin in block_linears(model))


def zeros(model) -> int:
    return sum(int((lin.weight == 0).sum()) for _, _, lin in block_linears(model))


# ------------------------------------------------------------------ exact sparsity
@pytest.mark.parametrize("sparsity", [0.5, 0.3])
def test_unstructured_sparsity_is_exact_per_comparison_group(trained, synthetic, sparsity):
    layer = cl.prune(fresh(trained), sparsity, "magnitude")
    for _, _, lin in block_linears(layer):
        assert int((lin.weight == 0).sum()) == round(sparsity * lin.weight.numel())
    glob = cl.prune(fresh(trained), sparsity, "magnitude", scope="global")
    assert zeros(glob) == round(sparsity * block_params(glob))
    for method, kw in (("magnitude", {"scope": "row"}), ("wanda", {"corpus": synthetic})):
        model = cl.prune(fresh(trained), sparsity, method, **kw)
        for _, _, lin in block_linears(model):
            per_row = (lin.weight == 0).sum(dim=1)
            assert (per_row == round(sparsity * lin.weight.shape[1])).all(), (method, lin)
    report = cl.pruning_report(model)  # the Wanda model: the report counts what is really zero
    table = C.sparsity_table(model)
    assert list(report["pruned"]) == list(table["pruned"]) and len(report) == 2 * 7
    assert report.attrs["method"] == "wanda" and report.attrs["scope"] == "row"
    assert report.attrs["achieved"] == pytest.approx(report["pruned"].sum() / report["total"].sum())


def test_half_sparsity_is_exactly_half_for_every_method(trained, synthetic):
    for method in ("magnitude", "wanda", "heads", "mlp"):
        model = cl.prune(fresh(trained), 0.5, method, corpus=synthetic)
        report = cl.pruning_report(model)
        assert (report["sparsity"] == 0.5).all(), method
        assert report.attrs["achieved"] == 0.5


# ------------------------------------------------------------------ structured
def attention_params(model) -> int:
    return sum(lin.weight.numel() for _, name, lin in block_linears(model) if name.startswith("self_attn"))


def mlp_params(model) -> int:
    return sum(lin.weight.numel() for _, name, lin in block_linears(model) if name.startswith("mlp"))


@pytest.mark.parametrize("calibrated", [False, True])
def test_heads_pruning_shrinks_attention_by_the_fraction_and_generates(trained, synthetic, calibrated):
    before_total, before_attn = C.metrics.n_params(trained), attention_params(trained)
    model = cl.prune(fresh(trained), 0.5, "heads", corpus=synthetic if calibrated else None)
    assert model.config.num_attention_heads == 2 and model.config.num_key_value_heads == 2
    assert model.config.head_dim == 16  # kept explicitly: no longer hidden_size / heads
    assert attention_params(model) == before_attn // 2
    assert before_total - C.metrics.n_params(model) == before_attn // 2  # nothing else changed
    out = C.generate(model, synthetic.val_batch(2, 8)[:, :8], 5)
    assert out.shape == (2, 13) and int(out.max()) < synthetic.vocab_size
    assert loss(trained, synthetic) < loss(model, synthetic) < math.log(synthetic.vocab_size) + 0.5


def test_mlp_pruning_shrinks_the_mlp_by_the_fraction_and_generates(trained, synthetic):
    d_ff = trained.config.intermediate_size  # 176
    model = cl.prune(fresh(trained), 0.25, "mlp", corpus=synthetic)
    assert model.config.intermediate_size == d_ff - 44
    assert mlp_params(model) == mlp_params(trained) * 3 // 4
    assert C.metrics.n_params(trained) - C.metrics.n_params(model) == mlp_params(trained) // 4
    assert C.generate(model, synthetic.val_batch(1, 4)[:, :4], 3).shape == (1, 7)
    assert abs(loss(model, synthetic) - loss(trained, synthetic)) < 0.1  # this model's MLP neurons are underused


def test_heads_pruning_with_grouped_query_attention_keeps_every_kv_head(synthetic):
    cfg = cl.ModelConfig(d_model=64, n_layer=2, n_head=4, n_kv_head=2, vocab_size=synthetic.vocab_size, seq_len=32)
    model = cl.build_model(cfg, seed=0).eval()
    k_params = sum(layer.self_attn.k_proj.weight.numel() for layer in model.model.layers)
    cl.prune(model, 0.5, "heads")
    assert model.config.num_attention_heads == 2 and model.config.num_key_value_heads == 2
    assert sum(layer.self_attn.k_proj.weight.numel() for layer in model.model.layers) == k_params
    assert model.model.layers[0].self_attn.num_key_value_groups == 1
    assert C.generate(model, torch.zeros(1, 4, dtype=torch.long), 3).shape == (1, 7)


def test_structured_sparsity_rounds_to_whole_heads_and_reports_it(trained):
    model = cl.prune(fresh(trained), 0.3, "heads")  # 0.3 x 4 heads -> 1 head per layer
    report = cl.pruning_report(model)
    assert list(report["pruned"]) == [1, 1] and report.attrs["achieved"] == 0.25


# ------------------------------------------------------------------ Wanda against magnitude
def test_wanda_beats_magnitude_when_the_model_has_outlier_features(trained, synthetic):
    """Wanda's premise (Sun et al. 2023): a few hidden dimensions carry large activations read by small weights.

    The tiny model has none, so there Wanda and magnitude are close (measured: Wanda 0.003-0.04
    nats/token worse at 50% on such models); `add_outlier_features` creates them without changing the
    function, and then magnitude pruning cuts the signal while Wanda, whose score is unchanged, does not.
    """
    plain = loss(trained, synthetic)
    outliers = C.add_outlier_features(fresh(trained), n_features=4, scale=10.0)
    assert loss(outliers, synthetic) == pytest.approx(plain, abs=1e-4)  # same function
    wanda_plain = loss(cl.prune(fresh(trained), 0.5, "wanda", corpus=synthetic), synthetic)
    wanda = loss(cl.prune(fresh(outliers), 0.5, "wanda", corpus=synthetic), synthetic)
    assert wanda == pytest.approx(wanda_plain, abs=2e-3)  # |W| * ||X|| does not see the reparametrization
    for scope in ("layer", "row", "global"):
        magnitude = loss(cl.prune(fresh(outliers), 0.5, "magnitude", scope=scope), synthetic)
        assert wanda <= magnitude, scope
    magnitude_plain = loss(cl.prune(fresh(trained), 0.5, "magnitude"), synthetic)
    assert abs(wanda_plain - magnitude_plain) < 0.05  # without outliers the two are close


def test_wanda_keeps_the_larger_activation_weighted_mass_in_every_row(trained, synthetic):
    """Per row, Wanda's kept weights have the largest sum of |W_ij| * ||X_j||: more than magnitude's choice keeps."""
    from cot_lab.compress.targets import calibration_rows, input_sq_norms

    rows = calibration_rows(trained, synthetic, 32)
    lin = trained.model.layers[0].mlp.down_proj  # the first block sees the same inputs whatever is pruned later
    norms = input_sq_norms(trained, [lin], rows)[lin].sqrt()
    score = lin.weight.detach().abs() * norms[None, :]
    kept = {}
    for method, kw in (("wanda", {"corpus": synthetic}), ("magnitude", {"scope": "row"})):
        w = cl.prune(fresh(trained), 0.5, method, **kw).model.layers[0].mlp.down_proj.weight
        kept[method] = (score * (w != 0)).sum(dim=1)
    assert (kept["wanda"] >= kept["magnitude"] - 1e-5).all() and (kept["wanda"] > kept["magnitude"]).any()


# ------------------------------------------------------------------ quantization
def test_int8_through_torchao_stays_within_tolerance_and_shrinks_the_file(trained, synthetic):
    pytest.importorskip("torchao")
    from torchao.quantization import Int8Tensor

    model = cl.quantize(fresh(trained), "int8", backend="torchao")
    assert isinstance(model.model.layers[0].mlp.up_proj.weight, Int8Tensor)
    assert abs(loss(model, synthetic) - loss(trained, synthetic)) < INT8_TOLERANCE
    # block matrices at 1 byte + a scale per row; the tied fp32 embedding (32,768 weights) stays as it is
    assert C.disk_bytes(model) < 0.5 * C.disk_bytes(trained)
    names = C.metrics.state_tensors(model)
    assert sum(n.endswith(".weight.qdata") for n in names) == 14  # every block matrix stored, as its int8 data
    assert len({C.disk_bytes(model) for _ in range(3)}) == 1
    assert C.history(model)[-1] == {"step": "quantize", "mode": "int8", "backend": "torchao"}


def test_weight_only_int8_and_bf16_stay_within_tolerance(trained, synthetic):
    dense = loss(trained, synthetic)
    weight_only = cl.quantize(fresh(trained), "int8", backend="weight-only")
    assert isinstance(weight_only.model.layers[0].mlp.up_proj, C.Int8WeightOnlyLinear)
    assert abs(loss(weight_only, synthetic) - dense) < INT8_TOLERANCE
    assert C.metrics.n_params(weight_only) == C.metrics.n_params(trained)
    bf16 = cl.quantize(fresh(trained), "bf16")
    assert next(bf16.parameters()).dtype == torch.bfloat16
    assert abs(loss(bf16, synthetic) - dense) < INT8_TOLERANCE
    assert C.disk_bytes(bf16) == pytest.approx(C.disk_bytes(trained) / 2, rel=0.01)


def test_int8_keeps_pruned_zeros(trained):
    model = cl.quantize(cl.prune(fresh(trained), 0.5), "int8", backend="weight-only")
    q = model.model.layers[1].mlp.down_proj.qweight
    assert int((q == 0).sum()) >= q.numel() // 2


# ------------------------------------------------------------------ sizes and latency
def test_sizes_are_measured_on_disk_and_unstructured_zeros_do_not_shrink_the_dense_file(trained, synthetic):
    n = C.metrics.n_params(trained)
    dense = C.disk_bytes(trained)
    assert 4 * n < dense < 4 * n + 8192  # fp32 values plus the safetensors header
    pruned = cl.prune(fresh(trained), 0.5)
    assert abs(C.disk_bytes(pruned) - dense) < 64  # the same tensors, zeros included
    sparse = C.sparse_bytes(pruned)
    blocks = block_params(trained)
    embed = trained.model.embed_tokens.weight.numel()
    # bitmask: 1 bit + half the values (4 bytes) per block weight; the embedding stays dense
    assert sparse["bitmask"] == pytest.approx(4 * embed + blocks / 8 + 4 * blocks / 2, rel=0.01)
    assert sparse["bitmask"] < sparse["csr"] < dense  # 2-byte CSR indices cost more than a bitmask at 50%
    assert C.sparse_bytes(trained)["bitmask"] == pytest.approx(dense, rel=0.02)  # nothing to gain when dense
    shrunk = cl.prune(fresh(trained), 0.5, "mlp")
    assert C.disk_bytes(shrunk) < dense - 4 * mlp_params(trained) // 2 + 64


def test_measure_reports_loss_size_and_latency(trained, synthetic):
    m = C.measure(trained, synthetic, n_sequences=EVAL, batch_size=2, n_tokens=4, repeats=2, warmup=1)
    assert m.val_loss == pytest.approx(loss(trained, synthetic), abs=1e-6)
    assert m.disk_bytes == C.disk_bytes(trained) and m.params == C.metrics.n_params(trained)
    assert 0 < m.score_s < math.inf and 0 < m.generate_s < math.inf
    frame = C.compare({"dense": trained, "pruned": cl.prune(fresh(trained), 0.5, "mlp")}, synthetic,
                      n_sequences=8, latency=False)
    assert frame.loc["dense", "size_ratio"] == 1.0 and frame.loc["pruned", "size_ratio"] < 1.0
    assert math.isnan(frame.loc["pruned", "score_s"])


def test_flops_per_token_of_a_model_matches_the_config_count_and_falls_with_structure(trained, synthetic):
    cfg = cl.ModelConfig(vocab_size=synthetic.vocab_size, **CFG)
    assert C.model_flops_per_token(trained) == cl.flops_per_token(cfg)
    assert C.model_flops_per_token(cl.prune(fresh(trained), 0.5)) == cl.flops_per_token(cfg)  # dense kernels
    shrunk = cl.prune(fresh(trained), 0.5, "mlp")
    assert cl.flops_per_token(cfg) - C.model_flops_per_token(shrunk) == 6 * mlp_params(trained) // 2


# ------------------------------------------------------------------ save, reload, recover
@pytest.mark.parametrize("method", ["wanda", "heads", "mlp"])
def test_pruned_model_saved_and_reloaded_gives_the_same_loss(trained, synthetic, method, tmp_path):
    model = cl.prune(fresh(trained), 0.5, method, corpus=synthetic)
    path = cl.save_model(model, tmp_path / "pruned.safetensors")
    back = cl.load_model(path)
    assert loss(back, synthetic) == pytest.approx(loss(model, synthetic), abs=1e-6)
    assert zeros(back) == zeros(model) and C.metrics.n_params(back) == C.metrics.n_params(model)
    assert cl.pruning_report(back).attrs["method"] == method
    assert not list(tmp_path.glob("*.tmp"))


def test_recover_lowers_the_loss_and_keeps_pruned_weights_at_zero(trained, synthetic):
    model = cl.prune(fresh(trained), 0.5, "wanda", corpus=synthetic)
    pruned_at = [(lin.weight == 0).clone() for _, _, lin in block_linears(model)]
    before = loss(model, synthetic)
    cl.recover(model, synthetic, flops=2e10)
    after = loss(model, synthetic)
    assert after < before - 0.01
    for mask, (_, _, lin) in zip(pruned_at, block_linears(model)):
        assert (lin.weight[mask] == 0).all()
    step = C.history(model)[-1]
    assert step["step"] == "recover" and step["val_loss_after"] < step["val_loss_before"]
    assert step["flops"] <= 2e10 and step["steps"] == int(2e10 / C.model_flops_per_token(model) // (16 * 64))


def test_recover_a_structurally_pruned_model(trained, synthetic):
    model = cl.prune(fresh(trained), 0.5, "heads")
    before = loss(model, synthetic)
    cl.recover(model, synthetic, tokens=16 * 64 * 6)
    assert loss(model, synthetic) < before
    assert C.history(model)[-1]["steps"] == 6


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, words", [
    (dict(sparsity=1.0), "sparsity=1.0"),
    (dict(sparsity=-0.1), "sparsity=-0.1"),
    (dict(sparsity="half"), "sparsity='half'"),
    (dict(method="random"), "method='random'"),
    (dict(method="wanda"), "corpus"),
    (dict(method="heads", scope="global"), "scope='global'"),
    (dict(method="wanda", scope="global"), "scope='global'"),
    (dict(method="heads", sparsity=0.9), "at least one"),
    (dict(method="mlp", sparsity=0.999), "at least one"),
])
def test_prune_rejects_bad_input_naming_the_argument(trained, kwargs, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        cl.prune(fresh(trained), **kwargs)


def test_other_entry_points_reject_bad_input(trained, synthetic, tmp_path):
    with pytest.raises(ValueError, match="mode='int4'"):
        cl.quantize(fresh(trained), "int4")
    with pytest.raises(ValueError, match="backend='cuda'"):
        cl.quantize(fresh(trained), "int8", backend="cuda")
    with pytest.raises(ValueError, match="not supported"):
        cl.prune(torch.nn.Linear(2, 2), 0.5)
    with pytest.raises(ValueError, match="give exactly one budget"):
        cl.recover(fresh(trained), synthetic)
    with pytest.raises(ValueError, match="too small for one step"):
        cl.recover(fresh(trained), synthetic, flops=1e3)
    with pytest.raises(ValueError, match="quantized"):
        cl.recover(cl.quantize(fresh(trained), "int8", backend="weight-only"), synthetic, flops=1e10)
    with pytest.raises(ValueError, match="int8-quantized model is not saved"):
        cl.save_model(cl.quantize(fresh(trained), "int8", backend="weight-only"), tmp_path / "q.safetensors")
    with pytest.raises(ValueError, match=r"\.safetensors"):
        cl.save_model(fresh(trained), tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        cl.load_model(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="n_features=0"):
        C.add_outlier_features(fresh(trained), n_features=0)


def test_building_a_model_prints_no_torchao_noise():
    code = ("import cot_lab as cl, torch; m = cl.build_model(cl.ModelConfig(d_model=32, n_layer=1, n_head=2)); "
            "m(input_ids=torch.zeros(1, 3, dtype=torch.long)); print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "ok" in done.stdout
    assert "Failed to load" not in done.stderr and "register_constant" not in done.stderr, done.stderr


# ------------------------------------------------------------------ notebook pieces: study, panel, figures
def test_quality_curves_panel_and_figures(trained, synthetic):
    from matplotlib.figure import Figure

    from cot_lab.compress import plots, study
    from cot_lab.compress.panel import prune_panel

    curves = study.quality_curves(trained, synthetic, sparsities=(0.5, 0.75), n_sequences=8)
    heads = curves[curves["method"] == "heads"]
    assert list(heads["achieved"]) == [0.0, 0.5, 0.75]  # 4 heads: 0.75 leaves one per layer
    assert (curves.groupby("method")["val_loss"].max() > curves.groupby("method")["val_loss"].min()).all()
    panel = prune_panel(trained, synthetic, n_sequences=8, repeats=1, n_tokens=2)
    assert panel.last is not None and "0.500" in panel.table.value
    measured = panel.set(0.25, "mlp neurons")
    assert measured.params < panel.dense.params and panel.last_error is None
    panel.set(0.99, "heads")  # removes every head: the panel shows the error instead of raising
    # one error display for every panel: the status line (the stale table is blanked)
    assert isinstance(panel.last_error, ValueError) and "at least one" in panel.status.value and panel.table.value == ""
    frame = C.compare({"dense": trained, "mlp": cl.prune(fresh(trained), 0.5, "mlp")}, synthetic, n_sequences=8,
                      repeats=1, warmup=0, n_tokens=2)
    figures = [plots.quality_vs_sparsity(curves, floor=3.0), plots.latency_ratios(frame),
               plots.size_quality_frontier({"a": (100, 4.0), "b": (50, 4.2), "c": (80, 4.5)})]
    assert all(isinstance(f, Figure) for f in figures)
    for fig in figures:
        assert_readable(fig)


def test_prune_or_train_small_spends_equal_flops_on_equal_shapes(synthetic):
    from cot_lab.compress import study

    cfg = cl.ModelConfig(d_model=32, n_layer=1, n_head=2, vocab_size=synthetic.vocab_size, seq_len=32)
    run = cl.train(cfg, synthetic, flops=5e9, batch_size=8, eval_sequences=8, progress=False)
    out = study.prune_or_train_small(run, synthetic, batch_size=8, eval_sequences=8)
    assert out["small_params"] == out["pruned_params"] < out["big_params"]
    assert study.RECOVER_SHARE == 0.1  # recovery: a tenth of the model's training FLOPs (see study.py)
    assert out["total_flops"] == pytest.approx((1 + study.RECOVER_SHARE) * run.flops)
    small_run = out["small_run"]  # the small arm is a plain cl.train run of the pruned shape
    assert small_run.flops <= out["total_flops"] and small_run.flops > 0.9 * out["total_flops"]
    assert small_run.config == cl.config_of(out["recovered_model"]) and small_run.hparams["batch_size"] == 8
    recover_step = C.history(out["recovered_model"])[-1]
    assert recover_step["step"] == "recover" and recover_step["flops"] <= study.RECOVER_SHARE * run.flops
    assert recover_step["flops"] > 0.9 * study.RECOVER_SHARE * run.flops
    assert out["recovered_loss"] < out["pruned_loss"]


# ------------------------------------------------------------------ speed ratios measured side by side
class FakeClock:
    """A clock that a timed call advances: a call costs its model's base seconds times the machine's load now."""

    def __init__(self, load):
        self.now, self.calls, self.load = 0.0, [], load

    def __call__(self) -> float:
        return self.now

    def work(self, label: str, base_s: float):
        def fn():
            self.now += base_s * self.load(len(self.calls))
            self.calls.append(label)
        return fn


def test_latencies_are_timed_in_interleaved_rounds_and_ratios_survive_a_busy_machine():
    # The machine gets 3x slower half-way (another job starts): A B A B ... meets it with both models alike.
    clock = FakeClock(lambda n: 1.0 if n < 10 else 3.0)
    medians = C.metrics.interleaved_medians({"dense": clock.work("dense", 0.010), "pruned": clock.work("pruned", 0.011)},
                                            repeats=9, warmup=1, clock=clock)
    assert clock.calls == ["dense", "pruned"] * 10  # one warm-up round, then 9 timed rounds, alternating
    assert medians["pruned"] / medians["dense"] == pytest.approx(1.1, rel=1e-9)
    # what the old panel did: the baseline timed once before the load, the candidate after it
    stale = C.metrics.interleaved_medians({"p": clock.work("p", 0.011)}, repeats=9, warmup=1, clock=clock)
    assert stale["p"] / 0.010 == pytest.approx(3.3)  # reads as 3.3x slower: the machine, not the model
    with pytest.raises(ValueError, match="fns"):
        C.metrics.interleaved_medians({}, repeats=3, warmup=0)
    with pytest.raises(ValueError, match="repeats"):
        C.metrics.interleaved_medians({"a": lambda: None}, repeats=0, warmup=0)


def test_compare_and_the_panel_time_their_models_side_by_side(trained, synthetic, monkeypatch):
    from cot_lab.compress import panel as panel_module
    from cot_lab.compress.panel import prune_panel

    seen = []
    real = C.metrics.interleaved_medians

    def recording(fns, **kw):
        seen.append(list(fns))
        return real(fns, **kw)

    monkeypatch.setattr(C.metrics, "interleaved_medians", recording)
    models = {"dense": trained, "mlp": cl.prune(fresh(trained), 0.5, "mlp"), "zeros": cl.prune(fresh(trained), 0.5)}
    frame = C.compare(models, synthetic, n_sequences=8, repeats=2, warmup=0, n_tokens=2, batch_size=2)
    assert seen == [["dense", "mlp", "zeros"]] * 2  # scoring, then generation: every model in the same rounds
    assert frame.loc["mlp", "score_ratio"] == frame.loc["mlp", "score_s"] / frame.loc["dense", "score_s"]

    panel = prune_panel(trained, synthetic, n_sequences=8, repeats=1, n_tokens=2)
    seen.clear()
    rounds = iter(range(1, 100))
    monkeypatch.setattr(panel_module, "latencies", lambda models, **kw: {
        k: {"score_s": 1e-3 * (i := next(rounds)), "generate_s": 1e-2 * i} for k in models})
    panel.set(0.7, "magnitude (per matrix)")
    assert (panel.dense.score_s, panel.last.score_s) == (1e-3, 2e-3)  # both from this one measurement
    panel.set(0.5, "heads")
    assert (panel.dense.score_s, panel.last.score_s) == (3e-3, 4e-3)  # the dense time is never a stale one
    assert "× 1.33" in panel.table.value


def test_every_table_reads_one_loss_per_pruned_model(trained, synthetic):
    from cot_lab.compress import study

    curves = study.quality_curves(trained, synthetic, sparsities=(0.5,), n_sequences=16).set_index(["method", "requested"])
    variants = {"dense": trained, **{label: study.pruned_copy(trained, synthetic, label, 0.5)
                                     for label in ("magnitude (per matrix)", "heads", "mlp neurons")}}
    frame = C.compare(variants, synthetic, n_sequences=16, latency=False)
    for label in ("magnitude (per matrix)", "heads", "mlp neurons"):
        assert frame.loc[label, "val_loss"] == curves.loc[(label, 0.5), "val_loss"], label
    with pytest.raises(ValueError, match="label='wanda'"):
        study.pruned_copy(trained, synthetic, "wanda", 0.5)
