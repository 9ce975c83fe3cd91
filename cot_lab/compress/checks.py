"""Notebook 03's exercise checks: numbers read off pruning measurements.

Each checker measures its expected value on the model the notebook passes in, so neither the
expected value nor the hint stands in a cell the student reads before answering.
"""
from __future__ import annotations

from cot_lab.compress.metrics import disk_bytes, n_params
from cot_lab.ui.checks import CheckResult, check_number, is_answered

__all__ = ["CheckResult", "is_answered", "pruned_file_bytes_answer", "params_after_mlp_answer"]


def pruned_file_bytes_answer(answer, pruned_model) -> CheckResult:
    """Check the size (bytes) of `pruned_model`'s dense safetensors file, measured on disk, within 2%.

    2% leaves room for the file's small JSON header, which the exercise says to ignore.
    """
    return check_number(answer, disk_bytes(pruned_model), rel=0.02, name="my_file_bytes", unit="bytes",
                        hint="zeros are stored like any other fp32 number: the dense file does not shrink.")


def params_after_mlp_answer(answer, pruned_model) -> CheckResult:
    """Check the parameter count (parameters) of `pruned_model` after structured MLP pruning, within 0.2%."""
    return check_number(answer, n_params(pruned_model), rel=0.002, name="my_params_after_mlp", unit="parameters",
                        hint="removed = n_layer x (d_ff / 2) x 3 x d_model; the embedding and norms stay.")
