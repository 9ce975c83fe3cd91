"""The hardware: which device to train on, its measured peak FLOP/s, and a catalog of GPUs.

Budget conversions (FLOPs <-> GPU-hours <-> USD <-> kWh) built on the catalog live in
`cot_lab.budget`.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from cot_lab import paths

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
        # bf16 pays on CPU only with native bf16 dot products (AVX-512 BF16 or AMX): measured
        # 404 vs 175 GFLOP/s here (REFERENCE.md section 9); elsewhere it is emulated and slower.
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
    # Write-then-rename so a second notebook never reads a half-written file.
    tmp = cache_path.with_name(f"{cache_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(tmp, cache_path)
    return flops


# -----------------------------------------------------------------------------
# GPU catalog
#
# Numbers from /work/shared/REFERENCE.md section 4 ("Hardware"), which cites per row:
#   glennklockwood.com (H100 SXM); NVIDIA PB-11133 (H100 PCIe); MLCommons inference v4.1 json
#   (H200); waredb (RTX 4090); winston-zhang-orz/gpu-specs and astroC86/gpu-datasheet (L4, A10,
#   A100); Tom's Hardware mirror of the Ampere whitepaper (RTX 3090).
# Prices are third-party copies of vendor pages, dated; a user should override them:
#   techbytes.app 2026-05-07 (Lambda, Modal); datareceipts 109-gpu-pricing 2026-11-09 (RunPod,
#   AWS); openrelay (RTX 3090/4090, undated).
# A10G (AWS g5) is left out on purpose: its tensor TFLOPS and power are unconfirmed (Baseten
# gives only 24 GB / 600 GB/s), and a Budget cannot be computed without them.


@dataclass(frozen=True)
class GPU:
    """One GPU model: dense tensor-core peak (TFLOP/s), memory, power, and an on-demand price."""
    name: str
    tflops_bf16: float            # dense BF16 (FP16 where noted) tensor-core peak, TFLOP/s
    tflops_sparse: float | None   # 2:4 structured-sparse peak, TFLOP/s
    memory_gb: float
    bandwidth_gb_s: float
    watts: float                  # board power (TDP)
    usd_per_hour: float | None    # on-demand price per GPU-hour; None: no documented price
    price_source: str | None
    price_date: str | None
    spec_source: str
    notes: str = ""

    @property
    def peak_flops(self) -> float:
        """Dense tensor-core peak in FLOP/s."""
        return self.tflops_bf16 * 1e12


_TECHBYTES = "techbytes.app"
_DATARECEIPTS = "datareceipts 109-gpu-pricing"

GPUS: dict[str, GPU] = {g.name: g for g in [
    # Spec: REFERENCE.md section 4 table (T4 row; no per-row source given there). Price: Modal.
    GPU("T4", 65, None, 16, 320, 70, 0.59, f"Modal via {_TECHBYTES}", "2026-05-07",
        "REFERENCE.md section 4 (NVIDIA T4 datasheet figures)",
        "FP16 only, no BF16 (Turing); no sparse tensor cores"),
    # Spec: winston-zhang-orz/gpu-specs, astroC86/gpu-datasheet. Price: Modal.
    GPU("L4", 121, 242, 24, 300, 72, 0.80, f"Modal via {_TECHBYTES}", "2026-05-07",
        "winston-zhang-orz/gpu-specs; astroC86/gpu-datasheet"),
    # Spec: same two repos. Price: Lambda.
    GPU("A10", 125, 250, 24, 600, 150, 0.86, f"Lambda via {_TECHBYTES}", "2026-05-07",
        "winston-zhang-orz/gpu-specs; astroC86/gpu-datasheet"),
    # Spec: same two repos; 312 also hard-coded by nanoGPT estimate_mfu. Price: Lambda.
    GPU("A100-40GB", 312, 624, 40, 1555, 400, 1.48, f"Lambda via {_TECHBYTES}", "2026-05-07",
        "winston-zhang-orz/gpu-specs; astroC86/gpu-datasheet; nanoGPT estimate_mfu",
        "400 W is the SXM board; the PCIe card draws less"),
    # Spec: same; bandwidth given as ~2.0 TB/s. Price: RunPod Community "A100 SXM".
    GPU("A100-80GB", 312, 624, 80, 2000, 400, 1.39, f"RunPod Community via {_DATARECEIPTS}",
        "2026-11-09", "winston-zhang-orz/gpu-specs; astroC86/gpu-datasheet",
        "bandwidth ~2.0 TB/s (approximate); the price source says 'A100 SXM' without the "
        "memory size, so its match to the 80 GB card is unconfirmed"),
    # Spec: glennklockwood.com. Price: Lambda.
    GPU("H100-SXM", 989.4, 1978.9, 80, 3350, 700, 3.78, f"Lambda via {_TECHBYTES}", "2026-05-07",
        "glennklockwood.com",
        "other dated prices: RunPod Community 2.69, AWS p5 6.88 (datareceipts, 2026-11-09); "
        "Modal 'H100' 3.95 (techbytes.app, 2026-05-07)"),
    # Spec: NVIDIA PB-11133. Price: Lambda.
    GPU("H100-PCIe", 756, 1513, 80, 2000, 350, 2.86, f"Lambda via {_TECHBYTES}", "2026-05-07",
        "NVIDIA PB-11133", "bandwidth given as '>2 TB/s'; 2000 GB/s is a lower bound"),
    # Spec: MLCommons inference v4.1 json. No documented price: Budget needs usd_per_hour.
    GPU("H200", 989, 1979, 141, 4800, 700, None, None, None,
        "MLCommons inference v4.1 json", "no documented price: pass usd_per_hour"),
    # Spec: Tom's Hardware mirror. 71 is the FP32-accumulate rate (what bf16/fp16 training
    # uses); 142 is with FP16 accumulate. Price: openrelay, undated.
    GPU("RTX-3090", 71, None, 24, 936, 350, 0.18, "openrelay", None,
        "Tom's Hardware mirror (Ampere GA102 whitepaper)",
        "71 TFLOP/s with FP32 accumulate is unconfirmed; 142 with FP16 accumulate; price undated"),
    # Spec: waredb. Price: openrelay, undated.
    GPU("RTX-4090", 165.2, 330.3, 24, 1008, 450, 0.29, "openrelay", None, "waredb",
        "price undated"),
]}


def _gpu_key(name: str) -> str:
    key = "".join(ch for ch in name.lower() if ch.isalnum())
    return key.removeprefix("nvidia").removeprefix("geforce")


def gpu(name: str) -> GPU:
    """Look up a GPU in the catalog by name, ignoring case, spaces, dashes and 'NVIDIA'."""
    if isinstance(name, str):
        for g in GPUS.values():
            if _gpu_key(g.name) == _gpu_key(name):
                return g
    raise ValueError(f"gpu={name!r} is not in the catalog; use one of {', '.join(GPUS)}")
