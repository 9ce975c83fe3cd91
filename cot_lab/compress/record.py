"""What was done to a model, kept on its config (`config.cot_lab_compression`), so it is saved with the weights.

A list of JSON-able steps, oldest first: {"step": "prune", "method": ..., "per_layer": [...]},
{"step": "quantize", ...}, {"step": "recover", ...}. It travels inside the safetensors metadata
written by `cot_lab.compress.save_model`, so a reloaded model still says how it was made.
"""
from __future__ import annotations

import copy

ATTR = "cot_lab_compression"


def add_record(model, step: dict) -> None:
    """Append `step` (JSON-able) to the model's compression history."""
    history = list(getattr(model.config, ATTR, None) or [])
    history.append(copy.deepcopy(step))
    setattr(model.config, ATTR, history)


def history(model) -> list[dict]:
    """The compression steps applied to `model`, oldest first (empty for an untouched model)."""
    return list(getattr(model.config, ATTR, None) or [])


def pruning_report(model):
    """Per-layer counts of the last pruning: DataFrame with layer, part, total, pruned, sparsity (fractions).

    part is a matrix name ('mlp.up_proj', ...) for unstructured methods, with total/pruned in weights;
    'heads' or 'neurons' for structured ones, with total/pruned in heads or neurons of that layer.
    """
    import pandas as pd

    steps = [s for s in history(model) if s.get("step") == "prune"]
    if not steps:
        raise ValueError("this model has not been pruned: call cl.prune(model, sparsity=..., method=...) first")
    frame = pd.DataFrame(steps[-1]["per_layer"])
    frame.attrs.update({k: v for k, v in steps[-1].items() if k != "per_layer"})
    return frame
