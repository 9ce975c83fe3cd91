"""Save and reload a (pruned, cast) model as one safetensors file whose metadata holds its transformers config.

A structurally pruned model no longer fits a `cl.ModelConfig` (its heads are not d_model / n_head
wide), so the file carries the model's own LlamaConfig as JSON, with its compression history.
Unstructured pruning survives as the exact zeros in the weights. Nothing is pickled; loading builds
only known architectures (never a class named by the file).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

FORMAT = "cot-lab/causal-lm/1"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _architectures():
    from transformers import LlamaConfig, LlamaForCausalLM

    return {"LlamaForCausalLM": (LlamaConfig, LlamaForCausalLM)}


def save_model(model, path: str | os.PathLike) -> Path:
    """Write `model` to `path` (a .safetensors file, replaced atomically); returns the path."""
    from safetensors.torch import save_model as st_save

    from .quantization import is_quantized

    name = type(model).__name__
    if name not in _architectures():
        raise ValueError(f"model={name} cannot be saved here; supported: {sorted(_architectures())}")
    if is_quantized(model):
        raise ValueError("an int8-quantized model is not saved as a model file: save it before quantize() and "
                         "quantize again after load_model() (quantizing takes well under a second)")
    path = Path(path).expanduser()
    if path.suffix != ".safetensors":
        raise ValueError(f"path={str(path)!r} must end in .safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    metadata = {"format": FORMAT, "architecture": name, "dtype": dtype, "config": model.config.to_json_string()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        st_save(model, tmp, metadata=metadata)
        os.replace(tmp, path)  # readers see the old file or the whole new one
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def load_model(path: str | os.PathLike):
    """The model saved by `save_model` at `path` (CPU, eval mode, in the dtype it was saved in)."""
    from safetensors import safe_open
    from safetensors.torch import load_model as st_load

    from ..quiet import quiet_imports

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no such file (write one with cl.save_model(model, path))")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != FORMAT or meta.get("architecture") not in _architectures():
        raise ValueError(f"path={str(path)!r} is not a cot-lab model file (format {meta.get('format')!r}); "
                         f"write one with cl.save_model(model, path)")
    config_cls, model_cls = _architectures()[meta["architecture"]]
    config = config_cls.from_dict(json.loads(meta["config"]))
    with quiet_imports():
        model = model_cls(config)
    model.to(DTYPES.get(meta.get("dtype"), torch.float32))
    st_load(model, str(path))
    return model.eval()
