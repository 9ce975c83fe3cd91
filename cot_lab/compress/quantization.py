"""Quantization: store (and compute) a model's matrices with fewer bits: int8 through torchao, or bf16 / fp16.

"int8" is torchao's dynamic int8 (`Int8DynamicActivationInt8WeightConfig`: int8 weights with one
scale per output row, activations quantized per token on the fly, int8 x int8 matmuls), applied to
the block matrices (and an untied output head); the embedding stays in its dtype, because it is a
lookup and, tied, it is also the output head. Not the deprecated `torch.ao.quantization.quantize_dynamic`
(deprecated by pytorch/pytorch PR #153892: "will be removed in 2.10 ... migrate to torchao quantize_").
Where torchao is missing or its int8 kernels fail on this device, int8 falls back to `Int8WeightOnlyLinear`
(int8 storage, dequantized for an ordinary matmul: smaller, not faster) and says why. "bf16" / "fp16"
cast every weight.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from cot_lab.compress.record import add_record
from cot_lab.core.checkpoint import is_quantized
from cot_lab.compress.targets import block_linears, check_model

MODES = ("int8", "bf16", "fp16")
BACKENDS = ("auto", "torchao", "weight-only")


class Int8WeightOnlyLinear(nn.Module):
    """A bias-free linear layer stored as int8 weights [out, in] and one float scale per output row.

    Symmetric per-row quantization: w ~= q * scale, q in [-127, 127]. Exact zeros stay exact zeros,
    so a pruned matrix keeps its sparsity. Forward dequantizes and runs a dense matmul.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach().float()
        scale = (w.abs().amax(dim=1) / 127).clamp(min=torch.finfo(torch.float32).tiny)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("qweight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(linear.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.qweight.to(x.dtype) * self.scale.to(x.dtype)[:, None])


def _int8_targets(model) -> list[nn.Linear]:
    targets = [lin for _, _, lin in block_linears(model)]
    head = model.get_output_embeddings()
    if isinstance(head, nn.Linear) and head.weight is not model.get_input_embeddings().weight:
        targets.append(head)  # an untied head is an ordinary matrix; a tied one is the embedding table
    return targets


def _torchao_int8(model, targets: list[nn.Linear]) -> None:
    """Quantize `targets` in place with torchao; raises ImportError / RuntimeError where it cannot run here."""
    from cot_lab.core.quiet import quiet_imports

    with quiet_imports():  # torchao logs about its CUDA-only kernels on import
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    device = next(model.parameters()).device
    probe = nn.Sequential(nn.Linear(32, 16, bias=False)).to(device)
    quantize_(probe, Int8DynamicActivationInt8WeightConfig())
    with torch.no_grad():
        probe(torch.randn(2, 32, device=device))  # fail here, on a toy, rather than half-way through the model
    chosen = set(map(id, targets))
    quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=lambda m, fqn: id(m) in chosen)


def _weight_only_int8(model, targets: list[nn.Linear]) -> None:
    chosen = set(map(id, targets))
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) in chosen:
                setattr(parent, name, Int8WeightOnlyLinear(child))


def quantize(model, mode: str = "int8", *, backend: str = "auto"):
    """Quantize `model` in place to `mode` ("int8", "bf16" or "fp16") and return it.

    backend (int8 only): "auto" = torchao, falling back to weight-only int8 with a warning that says
    why; "torchao" = torchao or an error; "weight-only" = cot-lab's `Int8WeightOnlyLinear`.
    """
    check_model(model)
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not known; use one of {MODES}")
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not known; use one of {BACKENDS}")
    if mode != "int8":
        if backend != "auto":
            raise ValueError(f"backend={backend!r} applies to mode='int8' only; leave backend='auto' for {mode!r}")
        model.to({"bf16": torch.bfloat16, "fp16": torch.float16}[mode])
        add_record(model, {"step": "quantize", "mode": mode, "backend": "cast"})
        return model
    if is_quantized(model):
        raise ValueError("model is already int8-quantized; quantize a fresh copy (copy.deepcopy before quantize)")
    targets = _int8_targets(model)
    used = backend
    if backend in ("auto", "torchao"):
        try:
            _torchao_int8(model, targets)
            used = "torchao"
        except (ImportError, RuntimeError, NotImplementedError) as error:
            if backend == "torchao":
                raise RuntimeError(f"torchao int8 does not run here ({type(error).__name__}: {error}); install it "
                                   f"with pip install 'cot-lab[compress]', or use backend='weight-only'") from error
            why = "torchao is not installed (pip install 'cot-lab[compress]')" if isinstance(error, ImportError) \
                else f"torchao's int8 kernels failed on this device ({type(error).__name__}: {error})"
            warnings.warn(f"{why}; using weight-only int8 instead: the same int8 storage, but it dequantizes before "
                          f"each matmul, so it is smaller, not faster", stacklevel=2)
            used = "weight-only"
    if used == "weight-only":
        _weight_only_int8(model, targets)
    add_record(model, {"step": "quantize", "mode": "int8", "backend": used})
    return model
