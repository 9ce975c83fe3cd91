"""Serving measurements: KV-cache bytes (formula = the cache's real tensors), the KV path's correctness, the report.

No timing thresholds: speeds are checked to be positive and finite and the derived numbers (ceiling, fraction,
FLOP rate) to follow from them exactly; tests never depend on how fast the machine is.
"""
import math

import pytest
import torch

import cot_lab as cl
from cot_lab.inference import serving
from cot_lab.inference.bandwidth import (cache_bytes_per_token, kv_bytes_per_token, measure_memory_bandwidth,
                                         weight_bytes_per_step)
from cot_lab.inference.serving import generate_greedy, measure_serving, new_cache, prefill

TINY = cl.ModelConfig(d_model=32, n_layer=2, n_head=2, vocab_size=512, seq_len=64)
BANDWIDTH = 1e10  # bytes/s, given so that report tests need not measure it


@pytest.fixture(scope="module")
def tiny():
    return cl.build_model(TINY, seed=0)


@pytest.mark.parametrize("cfg", [TINY, TINY.replace(n_head=4, n_kv_head=1), TINY.replace(tie_embeddings=False)])
@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_kv_bytes_formula_equals_the_cache_tensors(cfg, kind):
    model = cl.build_model(cfg, seed=0).eval()
    ids = torch.randint(0, cfg.vocab_size, (3, 10), generator=torch.Generator().manual_seed(0))  # [b, t]
    cache = new_cache(model, kind, 10)
    with torch.inference_mode():
        prefill(model, ids, cache)
    formula = 2 * cfg.n_layer * cfg.n_kv_head * cfg.head_dim * 4  # fp32: 4 bytes per element
    assert kv_bytes_per_token(cfg) == kv_bytes_per_token(model) == formula
    assert cache_bytes_per_token(cache) == formula  # exactly: sum of key/value nbytes / (batch * tokens)


def test_kv_bytes_of_llama3_8b_in_bf16_is_128_kib():
    # Llama-3-8B: 32 layers, 32 query heads sharing 8 KV heads of 128 (grouped-query attention); config only
    cfg = cl.ModelConfig(d_model=4096, n_layer=32, n_head=32, n_kv_head=8, d_ff=14336, vocab_size=128256,
                         seq_len=8192)
    assert cfg.head_dim == 128
    assert kv_bytes_per_token(cfg, dtype=torch.bfloat16) == 131072 == 128 * 1024
    assert kv_bytes_per_token(cfg, dtype=torch.float32) == 2 * 131072
    with pytest.raises(ValueError, match="dtype"):
        kv_bytes_per_token(cfg, dtype=torch.int8)
    with pytest.raises(ValueError, match="cfg"):
        kv_bytes_per_token("llama")


def test_weight_bytes_count_every_weight_once_and_skip_an_untied_lookup_table():
    tied = cl.build_model(TINY)
    assert weight_bytes_per_step(tied) == cl.count_params(TINY).total * 4
    untied_cfg = TINY.replace(tie_embeddings=False)
    untied = cl.build_model(untied_cfg)
    assert weight_bytes_per_step(untied) == (cl.count_params(untied_cfg).total - 512 * 32) * 4
    moe_cfg = TINY.replace(arch="moe", n_experts=4, top_k=2)  # a step reads at least top_k experts per layer
    assert weight_bytes_per_step(cl.build_model(moe_cfg)) == cl.active_params(moe_cfg) * 4


@pytest.mark.parametrize("backend", ["weight-only", "torchao"])
def test_int8_weights_are_counted_as_stored(backend):
    model = cl.quantize(cl.build_model(TINY), "int8", backend=backend)
    # by hand: each block matrix keeps one int8 per weight and one fp32 scale per output row (torchao keeps an
    # int8 zero point per row too); the tied embedding, the norms and the head stay fp32
    linears = [(32, 32)] * 4 + [(32, TINY.d_ff)] * 2 + [(TINY.d_ff, 32)]  # (in, out): q k v o, gate up, down
    per_layer = sum(i * o * 1 + o * 4 + (o if backend == "torchao" else 0) for i, o in linears)
    fp32_params = cl.count_params(TINY).total - TINY.n_layer * sum(i * o for i, o in linears)
    assert weight_bytes_per_step(model) == TINY.n_layer * per_layer + fp32_params * 4


def test_a_mixture_of_experts_is_measured_too():
    cfg = TINY.replace(arch="moe", n_experts=4, top_k=2)
    report = measure_serving(cl.build_model(cfg, seed=0), batch_sizes=(2,), prompt_tokens=6, new_tokens=3, repeats=1,
                             bandwidth_bytes_per_s=BANDWIDTH)
    assert report.kv_bytes_per_token == report.kv_bytes_per_token_measured == kv_bytes_per_token(cfg)
    assert report.batch(2).decoded_shape == (2, 3) and report.batch(2).decode_tokens_per_s > 0
    assert report.forward_flops_per_token == pytest.approx(cl.flops_per_token(cfg, seq_len=6 + 2) / 3, rel=1e-12)


def _greedy_without_cache(model, ids, new_tokens):
    """Greedy decoding the slow way: the whole sequence through the model again for every token, no cache."""
    for _ in range(new_tokens):
        logits = model(input_ids=ids, use_cache=False).logits  # [b, t, vocab]
        ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)
    return ids


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_greedy_through_the_kv_cache_equals_recomputing_the_whole_sequence(kind):
    # float64, so that a near-tie between two logits cannot flip on rounding (the two paths add in different orders)
    model = cl.build_model(TINY.replace(n_head=4, n_kv_head=2), seed=1).double().eval()
    ids = torch.randint(0, TINY.vocab_size, (2, 7), generator=torch.Generator().manual_seed(3))  # [b, t]
    cached = generate_greedy(model, ids, 12, cache=kind)
    with torch.inference_mode():
        reference = _greedy_without_cache(model, ids, 12)
    assert cached.shape == (2, 7 + 12)
    assert torch.equal(cached, reference)
    assert len(set(cached[:, 7:].flatten().tolist())) > 1  # a real continuation, not one token repeated


def test_greedy_matches_transformers_generate(tiny):
    from transformers import GenerationConfig

    ids = torch.randint(0, TINY.vocab_size, (2, 5), generator=torch.Generator().manual_seed(4))
    config = GenerationConfig(max_new_tokens=9, min_new_tokens=9, do_sample=False, use_cache=True, pad_token_id=0,
                              bos_token_id=None, eos_token_id=None)
    with torch.inference_mode():
        expected = tiny.eval().generate(ids, generation_config=config)
    assert torch.equal(generate_greedy(tiny, ids, 9), expected)
    assert generate_greedy(tiny, ids, 1).shape == (2, 6)


def test_report_has_every_batch_size_and_numbers_that_follow_from_the_measurements(tiny):
    tiny.train()
    report = measure_serving(tiny, batch_sizes=(1, 3), prompt_tokens=8, new_tokens=5, repeats=1,
                             bandwidth_bytes_per_s=BANDWIDTH)
    assert tiny.training  # mode restored
    assert [row.batch_size for row in report.batches] == [1, 3]
    assert report.cache == "dynamic" and report.device == "cpu" and report.dtype == "float32"
    assert report.kv_bytes_per_token == report.kv_bytes_per_token_measured == 2 * 2 * 2 * 16 * 4
    assert report.weight_bytes == cl.count_params(TINY).total * 4
    assert report.mean_context_tokens == 8 + (5 + 1) / 2  # step i reads 8 + i entries and writes one
    # forward FLOPs at the mean context: App. F forward only = the kit's training count / 3
    assert report.forward_flops_per_token == pytest.approx(cl.flops_per_token(TINY, seq_len=11) / 3, rel=1e-12)
    for row in report.batches:
        b = row.batch_size
        assert row.decoded_shape == (b, 5)  # the timed decode emitted new_tokens tokens per sequence
        for speed in (row.prefill_tokens_per_s, row.decode_tokens_per_s, row.ms_per_token, row.prefill_s, row.decode_s):
            assert math.isfinite(speed) and speed > 0
        assert row.decode_tokens_per_s == pytest.approx(b * 5 / row.decode_s)
        assert row.prefill_tokens_per_s == pytest.approx(b * 8 / row.prefill_s)
        assert row.ms_per_token == pytest.approx(1e3 * row.decode_s / 5)
        ceiling = b * BANDWIDTH / (report.weight_bytes + b * report.kv_bytes_per_token * 11)
        assert row.ceiling_tokens_per_s == pytest.approx(ceiling)
        assert row.fraction_of_ceiling == pytest.approx(row.decode_tokens_per_s / ceiling)
        assert row.decode_flops_per_s == pytest.approx(row.decode_tokens_per_s * report.forward_flops_per_token)
    frame = report.to_frame()
    assert list(frame.index) == [1, 3]
    assert {"decode_tokens_per_s", "ms_per_token", "kv_bytes_per_token", "bandwidth_bytes_per_s",
            "fraction_of_ceiling", "prefill_tokens_per_s"} <= set(frame.columns)
    assert report.batch(3) is report.batches[1]
    with pytest.raises(ValueError, match="batch_size=8"):
        report.batch(8)


def test_static_cache_can_be_forced_and_is_recorded(tiny):
    tiny.eval()
    report = measure_serving(tiny, batch_sizes=(2,), prompt_tokens=4, new_tokens=3, repeats=1, cache="static",
                             bandwidth_bytes_per_s=BANDWIDTH)
    assert report.cache == "static" and report.batch(2).decoded_shape == (2, 3)
    assert not tiny.training


def test_an_interrupt_restores_the_train_mode(tiny, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(serving, "decode", interrupted)
    tiny.train()
    with pytest.raises(KeyboardInterrupt):
        measure_serving(tiny, batch_sizes=(1,), prompt_tokens=4, new_tokens=2, repeats=1,
                        bandwidth_bytes_per_s=BANDWIDTH)
    assert tiny.training


@pytest.mark.parametrize("kwargs, match", [
    (dict(batch_sizes=()), r"batch_sizes=\(\)"), (dict(batch_sizes=(0, 8)), r"batch_sizes=\(0, 8\)"),
    (dict(batch_sizes=(-1,)), "batch_sizes"), (dict(batch_sizes=(1.5,)), "batch_sizes"),
    (dict(batch_sizes=(2, 2)), "distinct"), (dict(batch_sizes=8), "batch_sizes=8"),
    (dict(batch_sizes=(True,)), "batch_sizes"),
    (dict(prompt_tokens=0), "prompt_tokens=0"), (dict(new_tokens=-3), "new_tokens=-3"),
    (dict(prompt_tokens=40, new_tokens=30), r"70 is more than the model's context of 64.*<= 64"),
    (dict(repeats=0), "repeats=0"), (dict(cache="paged"), "cache='paged'"),
    (dict(bandwidth_bytes_per_s=-1.0), "bandwidth_bytes_per_s"), (dict(device="tpu"), "device='tpu'"),
])
def test_bad_arguments_are_named(tiny, kwargs, match):
    with pytest.raises(ValueError, match=match):
        measure_serving(tiny, **{"bandwidth_bytes_per_s": BANDWIDTH, "prompt_tokens": 8, "new_tokens": 4, **kwargs})
    with pytest.raises(ValueError, match="model"):
        measure_serving("gpt2")


def test_memory_bandwidth_is_measured_and_bad_sizes_are_named():
    bandwidth = measure_memory_bandwidth(n_bytes=4 * 2**20, repeats=2, device="cpu")
    assert math.isfinite(bandwidth) and bandwidth > 0
    for bad in (0, 1000, 2.5e8, True):
        with pytest.raises(ValueError, match=f"n_bytes={bad!r}.*256 MiB"):
            measure_memory_bandwidth(n_bytes=bad)
    with pytest.raises(ValueError, match="repeats=0"):
        measure_memory_bandwidth(n_bytes=2**20, repeats=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only: the compiled static-cache decode is its default")
def test_on_cuda_auto_compiles_a_static_cache_decode_that_emits_the_same_tokens():
    model = cl.build_model(TINY, seed=0).cuda().double().eval()  # float64: compiled and eager kernels round alike
    ids = torch.randint(0, TINY.vocab_size, (2, 8), generator=torch.Generator().manual_seed(0)).cuda()
    with torch.inference_mode():
        kv = new_cache(model, "dynamic", 18)
        eager = serving.decode(model, prefill(model, ids, kv), kv, 10)
        kv = new_cache(model, "static", 18)
        for _ in range(3):  # CUDA graphs record on the first calls and replay after
            serving.rewind(kv, 0)
            compiled = serving.decode(model, prefill(model, ids, kv), kv, 10, model.get_compiled_call(None))
            assert torch.equal(compiled, eager)
    report = measure_serving(model, batch_sizes=(1, 2), prompt_tokens=8, new_tokens=4, repeats=1,
                             bandwidth_bytes_per_s=BANDWIDTH)
    assert report.cache == "static+compile" and report.device.startswith("cuda")
    assert [row.decoded_shape for row in report.batches] == [(1, 4), (2, 4)]
