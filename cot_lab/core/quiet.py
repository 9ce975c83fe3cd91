"""Keep optional libraries' import-time log lines out of notebooks, without touching global logging.

torchao (the int8 backend of `cot_lab.compress.quantize`) logs on first import: it tries to load its
CUDA-only kernels ("Failed to load ..._C_cutlass_90a.abi3.so") and registers enums in a way torch
now warns about. transformers imports torchao whenever it is installed (its quantizer registry), so
building any model would print those lines. They are harmless and say nothing to a student, so the
first import runs with those loggers raised to ERROR, and the levels are put back afterwards.
"""
from __future__ import annotations

import contextlib
import logging
import warnings

NOISY_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_imports():
    """Within the block, the loggers in NOISY_LOGGERS show errors only and Python warnings are ignored."""
    return quiet_loggers(NOISY_LOGGERS, logging.ERROR)


@contextlib.contextmanager
def quiet_loggers(names, level: int):
    """Within the block, the loggers called `names` show `level` and above, and Python warnings are ignored; their
    levels are put back afterwards, so no global logging state changes."""
    loggers = [logging.getLogger(name) for name in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, saved):
            lg.setLevel(level)
