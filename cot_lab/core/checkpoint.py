"""The one model-file format: a safetensors file whose metadata holds the model's transformers config.

Store checkpoints (`RunStore`) and saved models (`cl.save_model`) are the same format, for dense
(Llama-style) and MoE (Mixtral-style) models, pruned or not: a structurally pruned model no longer
fits d_model / n_head, so the file carries the model's own config as JSON, plus anything the caller
adds (a run id, the compression history). Nothing is pickled; loading builds only the known
architectures, never a class the file names.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from cot_lab.core.io import atomic_path

FORMAT = "cot-lab/causal-lm/1"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _architectures():
    from cot_lab.core.quiet import quiet_imports

    with quiet_imports():
        from transformers import LlamaConfig, LlamaForCausalLM, MixtralConfig, MixtralForCausalLM

    return {"LlamaForCausalLM": (LlamaConfig, LlamaForCausalLM), "MixtralForCausalLM": (MixtralConfig, MixtralForCausalLM)}


def is_quantized(model) -> bool:
    """True when `model` holds integer weights or tensor subclasses (torchao int8, weight-only int8)."""
    tensors = [*model.parameters(), *model.buffers()]
    return any(type(t) not in (torch.Tensor, torch.nn.Parameter) or not t.is_floating_point() for t in tensors)


def save_model(model, path: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> Path:
    """Write `model` to `path` (a .safetensors file, replaced atomically) with its config; returns the path."""
    from safetensors.torch import save_model as st_save

    name = type(model).__name__
    if name not in _architectures():
        raise ValueError(f"model={name} cannot be saved here; supported: {sorted(_architectures())}")
    if is_quantized(model):
        raise ValueError("an int8-quantized model is not saved as a model file: save it before quantize() and "
                         "quantize again after load_model() (quantizing takes well under a second)")
    path = Path(path).expanduser()
    if path.suffix != ".safetensors":
        raise ValueError(f"path={str(path)!r} must end in .safetensors")
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    meta = {**(metadata or {}), "format": FORMAT, "architecture": name, "dtype": dtype,
            "config": model.config.to_json_string()}
    with atomic_path(path) as tmp:
        st_save(model, str(tmp), metadata=meta)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file (an empty dict if it has none)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_model(path: str | os.PathLike):
    """The model in the file at `path` (CPU, eval mode, in the dtype it was saved in): a saved model or a store checkpoint."""
    from safetensors.torch import load_model as st_load

    from cot_lab.core.quiet import quiet_imports

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"path={str(path)!r}: no such file (write one with cl.save_model(model, path))")
    meta = read_metadata(path)
    if meta.get("format") != FORMAT and "run_id" in meta:
        return _legacy_store_checkpoint(path, meta["run_id"])
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


def _legacy_store_checkpoint(path: Path, run_id: str):
    """A store checkpoint written before checkpoints carried their config: the store's record has it."""
    from cot_lab.core.runs import RunStore

    root = path.parent.parent
    if not (root / "runs.sqlite").is_file():
        raise ValueError(f"path={str(path)!r} is an old store checkpoint (run {run_id}) away from its store; "
                         f"open it with cl.RunStore({str(root)!r}).load_model({run_id!r})")
    return RunStore(root).load_model(run_id)


def weights_fingerprint(model) -> str:
    """A content hash (hex, 20 chars) of a model's tensors, names and shapes: equal weights, equal hash."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:20]
