"""The GPU catalog of notebook 01: dense tensor-core peaks, memory, power and dated on-demand prices.

Every row names its datasheet or spec source; prices are third-party copies of vendor pages with
their date, so a user should override them (`Budget(..., usd_per_hour=...)`).
"""
from __future__ import annotations

from dataclasses import dataclass

# -----------------------------------------------------------------------------
# GPU catalog
#
# Spec sources, per row: NVIDIA Tesla T4 datasheet (T4);
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
    # Spec: NVIDIA Tesla T4 datasheet (65 TFLOPS FP16 mixed precision, 16 GB GDDR6, 320 GB/s, 70 W).
    # Price: Modal.
    GPU("T4", 65, None, 16, 320, 70, 0.59, f"Modal via {_TECHBYTES}", "2026-05-07",
        "NVIDIA Tesla T4 datasheet (65 TFLOPS FP16 mixed precision, 16 GB, 320 GB/s, 70 W)",
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
