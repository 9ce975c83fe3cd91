"""The device: which one to train on, its precision (autocast dtype), its name and its measured peak FLOP/s.

The catalog of GPUs one could rent, and budget conversions built on it, live in `cot_lab.budgets`.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from cot_lab.core import paths
from cot_lab.core.io import write_json

# -----------------------------------------------------------------------------
# devices

_DEVICE_HELP = "'auto' (or None), 'cpu', 'cuda', 'cuda:N' or 'mps'"


def detect_device() -> torch.device:
    """The best device present: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Turn None/'auto'/'cpu'/'cuda[:N]'/'mps' into a torch.device that exists on this machine."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return detect_device()
    if isinstance(device, str):
        try:
            dev = torch.device(device.strip().lower())
        except RuntimeError:
            raise ValueError(f"device={device!r} is not a device name; use {_DEVICE_HELP}") from None
    elif isinstance(device, torch.device):
        dev = device
    else:
        raise ValueError(f"device={device!r} has type {type(device).__name__}; use {_DEVICE_HELP}")

    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); use 'cpu' or 'auto'")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device={device!r}: this machine has {count} CUDA device(s); "
                             f"use 'cuda:0' .. 'cuda:{count - 1}' or 'auto'")
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device={device!r}: Apple MPS is not available on this machine; "
                             f"use 'cpu' or 'auto'")
        return dev
    raise ValueError(f"device={device!r} (type {dev.type!r}) is not supported; use {_DEVICE_HELP}")


# Read at call time, never at import, so tests can point it at a fake file.
_CPUINFO = Path("/proc/cpuinfo")


def _cpuinfo_field(name: str) -> str | None:
    """The first value of `name` in /proc/cpuinfo (Linux only), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        text = _CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == name:
            return value.strip()
    return None


def cpu_flags() -> set[str]:
    """The CPU feature flags from /proc/cpuinfo; empty off Linux."""
    return set((_cpuinfo_field("flags") or "").split())


def autocast_dtype(device: str | torch.device | None = None) -> torch.dtype | None:
    """The dtype to autocast to on `device` (bf16/fp16), or None for plain fp32."""
    setting = os.environ.get("COT_LAB_AUTOCAST", "auto").strip().lower()
    if setting in ("off", "0", "false", "no"):
        return None
    if setting not in ("auto", "on", "1", "true", "yes", ""):
        raise ValueError(f"COT_LAB_AUTOCAST={setting!r} is not understood; use 'off' or 'auto'")
    dev = resolve_device(device)
    if dev.type == "cuda":
        # Emulated bf16 (e.g. T4) is slower than fp16, so only count native support.
        with torch.cuda.device(dev):
            native = torch.cuda.is_bf16_supported(including_emulation=False)
        return torch.bfloat16 if native else torch.float16
    if dev.type == "cpu":
        # bf16 pays on CPU only with native bf16 dot products (AVX-512 BF16 or AMX): on the kit's 2-core
        # AMD EPYC with AVX-512 BF16, a 2048^3 matmul measured 404 GFLOP/s in bf16 vs 175 in fp32 (the
        # measure_peak_flops figures benchmarks/trainer_throughput.py prints); elsewhere it is emulated and slower.
        return torch.bfloat16 if cpu_flags() & {"avx512_bf16", "amx_bf16"} else None
    return None  # MPS: keep fp32 until bf16/fp16 autocast there has been measured


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def precision_name(amp_dtype: torch.dtype | None) -> str:
    """Short name of a training precision: "fp32" (no autocast), "bf16" or "fp16"."""
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[amp_dtype]


def device_name(device: str | torch.device | None = None) -> str:
    """A human name for the device: the GPU model, or the CPU model."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    cpu = (_cpuinfo_field("model name")
           or (_sysctl("machdep.cpu.brand_string") if sys.platform == "darwin" else None)
           or platform.processor() or platform.machine() or "unknown CPU")
    return f"{cpu} (MPS)" if dev.type == "mps" else cpu


# -----------------------------------------------------------------------------
# measured peak FLOP/s

# Fraction of the measured matmul peak a training run reaches, before any run has been measured: tiny
# models are overhead-bound (measured here with benchmarks/trainer_throughput.py: a 33K-parameter model
# reached ~15% of the fp32 peak of a 2-core CPU), so this is a rough prior that panels replace with the
# efficiency of your last run.
ASSUMED_EFFICIENCY = {"cpu": 0.05, "mps": 0.1, "cuda": 0.2}

_PEAK_DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    elif dev.type == "mps":
        torch.mps.synchronize()


def _matmul_flops(dev: torch.device, dtype: torch.dtype, n: int,
                  time_budget_s: float = 1.5, max_samples: int = 7) -> tuple[float, int]:
    """Best FLOP/s of an n x n x n matmul on `dev`, and the n actually used."""
    def make(size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # A private generator leaves the global RNG state alone; random data (not zeros)
        # because GPU clocks depend on how many bits toggle.
        g = torch.Generator().manual_seed(0)
        a, b = (torch.randn(size, size, generator=g).to(dev, dtype) for _ in range(2))
        return a, b, torch.empty(size, size, device=dev, dtype=dtype)

    def timed(k: int) -> float:
        _sync(dev)
        t0 = time.perf_counter()
        for _ in range(k):
            torch.matmul(a, b, out=c)
        _sync(dev)
        return time.perf_counter() - t0

    a, b, c = make(n)
    timed(1)  # first call pays for kernel selection / JIT, thread-pool start, allocation
    # A slow device (an old laptop, emulated bf16) would take many seconds at full size.
    while timed(1) > 0.25 and n > 512:
        n //= 2
        a, b, c = make(n)
        timed(1)
    k = 1  # matmuls per sample: enough that launch overhead and timer resolution vanish
    while (t := timed(k)) < 0.02 and k < 4096:
        k *= 2
    best, spent, samples = t / k, t, 1
    while samples < max_samples and spent < time_budget_s:
        t = timed(k)
        best, spent, samples = min(best, t / k), spent + t, samples + 1
    return 2 * n**3 / best, n


def _peak_cache() -> Path:
    return paths.home() / "peak_flops.json"


def measure_peak_flops(device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                       *, refresh: bool = False) -> float:
    """Measured peak matmul throughput of `device` in FLOP/s, cached per machine.

    Best of several timed square matmuls (n=2048 on CPU, 8192 on GPU, smaller if the device
    is slow) after warm-up. `dtype` None means the device's autocast dtype (fp32 if none).
    The result is cached in `home()/peak_flops.json`, keyed by device name, dtype, torch
    version and thread count; `refresh=True` measures again. On CUDA, fp32 measures whatever
    the current TF32 setting gives.
    """
    dev = resolve_device(device)
    if dtype is None:
        dtype = autocast_dtype(dev) or torch.float32
    if dtype not in _PEAK_DTYPES:
        raise ValueError(f"dtype={dtype!r} is not supported; use torch.float32, torch.bfloat16 "
                         f"or torch.float16 (or None for the device's autocast dtype)")
    name = device_name(dev)
    threads = torch.get_num_threads()
    key = f"{name} | {_PEAK_DTYPES[dtype]} | torch {torch.__version__} | {threads} threads"
    cache_path = _peak_cache()
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}  # missing or corrupt: it only holds measurements, so measure again
    if not isinstance(cache, dict):
        cache = {}
    entry = cache.get(key)
    if not refresh and isinstance(entry, dict) and isinstance(entry.get("flops_per_s"), (int, float)):
        return float(entry["flops_per_s"])

    flops, n = _matmul_flops(dev, dtype, 2048 if dev.type == "cpu" else 8192)
    cache[key] = {"flops_per_s": flops, "device": name, "dtype": _PEAK_DTYPES[dtype],
                  "torch": torch.__version__, "threads": threads, "n": n,
                  "measured": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json(cache_path, cache)  # atomic: a second notebook never reads a half-written file
    return flops
