"""Tests for cot_lab.hardware (devices, peak FLOP/s, GPU catalog) and cot_lab.budget."""
from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from cot_lab.core import device as hardware
from cot_lab.budgets.budget import Budget
from cot_lab.budgets.gpus import GPUS, gpu
from cot_lab.core.device import autocast_dtype, detect_device, measure_peak_flops, resolve_device


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COT_LAB_AUTOCAST", raising=False)
    return tmp_path / "home"


def _proc_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


# ----------------------------------------------------------------------------- Budget

def test_gpu_hours_to_flops_is_exact():
    b = Budget.from_gpu_hours("H100-SXM", 1, 0.4)
    assert b.flops == 989.4e12 * 0.4 * 3600
    assert b.gpu == "H100-SXM" and b.gpu_hours == 1


def test_flops_round_trip_gives_one_hour():
    flops = Budget.from_gpu_hours("H100-SXM", 1, 0.4).flops
    b = Budget.from_flops(flops, gpu="H100-SXM", mfu=0.4)
    assert b.hours == 1.0
    assert b.usd == pytest.approx(GPUS["H100-SXM"].usd_per_hour) == pytest.approx(3.78)
    assert b.kwh == pytest.approx(0.7, rel=1e-12)


def test_default_gpu_and_mfu():
    b = Budget.from_flops(1.424736e18)
    assert b.gpu == "H100-SXM" and b.mfu == 0.4
    assert b.hours == pytest.approx(1.0, rel=1e-12)


def test_from_usd_and_price_override():
    b = Budget.from_usd(37.8, "H100-SXM")
    assert b.hours == pytest.approx(10.0, rel=1e-12)
    assert b.flops == pytest.approx(10 * 989.4e12 * 0.4 * 3600, rel=1e-12)
    own = Budget.from_gpu_hours("a100-80gb", 2, mfu=0.5, usd_per_hour=1.0)
    assert own.usd == pytest.approx(2.0) and own.usd_per_hour == 1.0
    assert own.flops == pytest.approx(312e12 * 0.5 * 7200, rel=1e-12)
    assert own.kwh == pytest.approx(0.8, rel=1e-12)  # 2 h x 400 W


def test_mfu_scales_hours_not_flops():
    lo = Budget.from_flops(1e20, "A100-40GB", mfu=0.2)
    hi = Budget.from_flops(1e20, "A100-40GB", mfu=0.4)
    assert lo.hours == pytest.approx(2 * hi.hours, rel=1e-12)
    assert lo.usd == pytest.approx(2 * hi.usd, rel=1e-12)


def test_pue_scales_energy_only():
    b = Budget.from_gpu_hours("H100-SXM", 1, pue=1.2)
    assert b.kwh == pytest.approx(0.84, rel=1e-12)
    assert b.usd == pytest.approx(3.78)
    with pytest.raises(ValueError, match="pue="):
        Budget.from_gpu_hours("H100-SXM", 1, pue=0.9)


def test_gpu_without_price_needs_usd_per_hour():
    assert GPUS["H200"].usd_per_hour is None
    with pytest.raises(ValueError, match="usd_per_hour"):
        Budget.from_gpu_hours("H200", 1)
    b = Budget.from_gpu_hours("H200", 1, usd_per_hour=4.0)
    assert b.usd == 4.0 and b.flops == 989e12 * 0.4 * 3600
    with pytest.raises(ValueError, match="usd_per_hour="):
        Budget.from_usd(10, "H100-SXM", usd_per_hour=0)


def test_str():
    s = str(Budget.from_gpu_hours("h100 sxm", 1, 0.4))
    assert s == "1.42e+18 FLOPs = 1 h of H100-SXM at 40% MFU = $3.78 = 0.70 kWh"


def test_direct_construction_is_checked():
    b = Budget.from_gpu_hours("T4", 3, 0.25)
    assert dataclasses.replace(b, hours=3.0) == b
    with pytest.raises(ValueError, match="flops="):
        dataclasses.replace(b, hours=4)  # flops no longer match 4 h of T4
    custom = Budget(flops=1e15, gpu=None, hours=2, mfu=0.5, usd_per_hour=0, watts=30)
    assert custom.usd == 0 and custom.kwh == pytest.approx(0.06)
    assert "the GPU" in str(custom)
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.hours = 2  # type: ignore[misc]


@pytest.mark.parametrize("kwargs, arg", [
    (dict(mfu=0), "mfu="), (dict(mfu=1.5), "mfu="), (dict(mfu=-0.1), "mfu="),
    (dict(mfu=math.nan), "mfu="), (dict(mfu="0.4"), "mfu="),
    (dict(hours=0), "hours="), (dict(hours=-1), "hours="), (dict(hours=math.inf), "hours="),
    (dict(hours=True), "hours="), (dict(usd_per_hour=-1), "usd_per_hour="),
])
def test_bad_gpu_hours_arguments(kwargs, arg):
    args = dict(gpu="H100-SXM", hours=1.0, mfu=0.4) | kwargs
    with pytest.raises(ValueError, match=arg):
        Budget.from_gpu_hours(**args)


@pytest.mark.parametrize("flops", [0, -1e18, math.inf, math.nan, None])
def test_bad_flops(flops):
    with pytest.raises(ValueError, match="flops="):
        Budget.from_flops(flops)


def test_bad_usd():
    with pytest.raises(ValueError, match="usd="):
        Budget.from_usd(-5, "L4")


def test_mfu_of_one_is_allowed():
    assert Budget.from_gpu_hours("L4", 1, mfu=1.0).flops == 121e12 * 3600


# ----------------------------------------------------------------------------- catalog

def test_catalog_entries_are_sourced_and_sane():
    assert {"T4", "L4", "A10", "A100-40GB", "A100-80GB", "H100-SXM", "H100-PCIe", "H200",
            "RTX-3090", "RTX-4090"} <= set(GPUS)
    assert "A10G" not in GPUS  # unconfirmed TFLOPS: deliberately left out
    for key, g in GPUS.items():
        assert key == g.name
        assert g.spec_source.strip(), key
        assert g.tflops_bf16 > 0 and g.memory_gb > 0 and g.bandwidth_gb_s > 0 and g.watts > 0, key
        assert g.tflops_sparse is None or g.tflops_sparse > g.tflops_bf16, key
        if g.usd_per_hour is not None:
            assert g.usd_per_hour > 0 and g.price_source, key
        assert g.peak_flops == g.tflops_bf16 * 1e12


def test_catalog_values_from_reference():
    h100 = GPUS["H100-SXM"]
    assert (h100.tflops_bf16, h100.tflops_sparse, h100.memory_gb, h100.watts) == (989.4, 1978.9, 80, 700)
    assert (h100.usd_per_hour, h100.price_date) == (3.78, "2026-05-07")
    assert GPUS["A100-40GB"].tflops_bf16 == 312 and GPUS["H200"].memory_gb == 141
    assert "no BF16" in GPUS["T4"].notes
    assert "unconfirmed" in GPUS["RTX-3090"].notes


@pytest.mark.parametrize("name, key", [
    ("H100-SXM", "H100-SXM"), ("h100-sxm", "H100-SXM"), ("H100 SXM", "H100-SXM"),
    ("h100_pcie", "H100-PCIe"), ("a100-80gb", "A100-80GB"), ("t4", "T4"),
    ("NVIDIA GeForce RTX 4090", "RTX-4090"), ("rtx3090", "RTX-3090"),
])
def test_lookup_ignores_case_and_dashes(name, key):
    assert gpu(name) is GPUS[key]


@pytest.mark.parametrize("name", ["A10G", "H300", "", None])
def test_unknown_gpu_lists_catalog(name):
    with pytest.raises(ValueError, match="gpu=") as err:
        gpu(name)
    assert "H100-SXM" in str(err.value) and "RTX-4090" in str(err.value)
    with pytest.raises(ValueError, match="gpu="):
        Budget.from_gpu_hours(name, 1)


# ----------------------------------------------------------------------------- devices

@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(),
                    reason="this machine has an accelerator")
def test_detect_device_is_cpu_here():
    assert detect_device() == torch.device("cpu")
    assert resolve_device(None) == resolve_device("auto") == torch.device("cpu")


def test_resolve_device_accepts_cpu_spellings():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA:1"])
def test_resolve_cuda_without_cuda(name):
    with pytest.raises(ValueError, match="device=.*CUDA is not available"):
        resolve_device(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="MPS present")
def test_resolve_mps_without_mps():
    with pytest.raises(ValueError, match="device=.*MPS"):
        resolve_device("mps")


@pytest.mark.parametrize("bad", ["gpu", "tpu:0", "cuda:x", 0, 1.5])
def test_resolve_device_rejects_junk(bad):
    with pytest.raises(ValueError, match="device=") as err:
        resolve_device(bad)
    assert "'cpu'" in str(err.value)


def test_autocast_dtype_matches_cpu_flags():
    expected = torch.bfloat16 if sys.platform.startswith("linux") and \
        _proc_flags() & {"avx512_bf16", "amx_bf16"} else None
    assert autocast_dtype("cpu") is expected


def test_autocast_dtype_off(monkeypatch):
    monkeypatch.setenv("COT_LAB_AUTOCAST", "off")
    assert autocast_dtype("cpu") is None
    monkeypatch.setenv("COT_LAB_AUTOCAST", "sometimes")
    with pytest.raises(ValueError, match="COT_LAB_AUTOCAST"):
        autocast_dtype("cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/cpuinfo")
@pytest.mark.parametrize("flags, expected", [
    ("fpu sse2 avx2 avx512f", None), ("fpu avx512f avx512_bf16", torch.bfloat16),
    ("fpu amx_bf16 amx_tile", torch.bfloat16),
])
def test_autocast_dtype_from_fake_cpuinfo(tmp_path, monkeypatch, flags, expected):
    fake = tmp_path / "cpuinfo"
    fake.write_text(f"processor\t: 0\nmodel name\t: Fake CPU 9000\nflags\t\t: {flags}\n\n")
    monkeypatch.setattr(hardware, "_CPUINFO", fake)
    assert autocast_dtype("cpu") is expected
    assert hardware.device_name("cpu") == "Fake CPU 9000"


def test_device_name_cpu():
    name = hardware.device_name("cpu")
    assert isinstance(name, str) and name.strip()
    if sys.platform.startswith("linux"):
        model = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
        if model:
            assert name == model[0]


# ----------------------------------------------------------------------------- peak FLOP/s

def test_measure_peak_flops_real_then_cached(home, monkeypatch):
    rng = torch.get_rng_state()
    flops = measure_peak_flops("cpu", torch.float32)
    assert 1e9 < flops < 1e15
    assert torch.equal(torch.get_rng_state(), rng)  # the benchmark leaves the global RNG alone

    cache = json.loads((home / "peak_flops.json").read_text())
    (key, entry), = cache.items()
    assert "float32" in key and torch.__version__ in key
    assert entry["flops_per_s"] == flops and entry["n"] <= 2048

    def boom(*args, **kwargs):
        raise AssertionError("measured again instead of using the cache")
    monkeypatch.setattr(hardware, "_matmul_flops", boom)
    assert measure_peak_flops("cpu", torch.float32) == flops


def test_refresh_measures_again(home, monkeypatch):
    calls = []

    def fake(dev, dtype, n):
        calls.append((dev.type, dtype, n))
        return 123e9 * len(calls), n
    monkeypatch.setattr(hardware, "_matmul_flops", fake)
    assert measure_peak_flops("cpu", torch.float32) == 123e9
    assert measure_peak_flops("cpu", torch.float32) == 123e9
    assert measure_peak_flops("cpu", torch.float32, refresh=True) == 246e9
    assert measure_peak_flops("cpu", torch.float32) == 246e9
    assert calls == [("cpu", torch.float32, 2048)] * 2


def test_default_dtype_is_autocast_dtype(home, monkeypatch):
    def fake(dev, dtype, n):
        return (1e11 if dtype == torch.float32 else 2e11), n
    monkeypatch.setattr(hardware, "_matmul_flops", fake)
    expected = 2e11 if autocast_dtype("cpu") is not None else 1e11
    assert measure_peak_flops() == expected
    monkeypatch.setenv("COT_LAB_AUTOCAST", "off")
    assert measure_peak_flops() == 1e11
    assert len(json.loads((home / "peak_flops.json").read_text())) == (2 if expected == 2e11 else 1)


def test_corrupt_cache_is_remeasured(home, monkeypatch):
    home.mkdir(parents=True, exist_ok=True)
    (home / "peak_flops.json").write_text("{not json")
    monkeypatch.setattr(hardware, "_matmul_flops", lambda dev, dtype, n: (5e10, n))
    assert measure_peak_flops("cpu", torch.float32) == 5e10
    assert list(json.loads((home / "peak_flops.json").read_text()).values())[0]["flops_per_s"] == 5e10
    assert not list(home.glob("*.tmp"))


@pytest.mark.parametrize("dtype", [torch.int32, torch.float64, "bf16"])
def test_bad_dtype(dtype):
    with pytest.raises(ValueError, match="dtype="):
        measure_peak_flops("cpu", dtype)
