"""Pruning and quantization, with measurements that do not flatter (loss, bytes on disk, latency on this device).

    model = cl.prune(run.load_model(), sparsity=0.5, method="wanda", corpus=corpus)
    cl.pruning_report(model)                 # per-layer counts: the sparsity asked for, achieved exactly
    cl.quantize(model, "int8")               # torchao dynamic int8 where it runs
    cl.measure(model, corpus)                # val loss, safetensors bytes, sparse estimate, latencies
    cl.recover(model, corpus, flops=1e11)    # fine-tune with the pruned weights held at zero

Modules: pruning (unstructured) and structured (heads, neurons), quantization, metrics, recovery, io
(save/reload), record (the history kept on the config), plots, widgets.
"""
from cot_lab.core.checkpoint import load_model, save_model
from cot_lab.compress.outliers import add_outlier_features
from cot_lab.compress.metrics import Measurement, compare, disk_bytes, generate, generate_latency, measure, score_latency, sparse_bytes
from cot_lab.compress.pruning import METHODS, prune, sparsity_table
from cot_lab.compress.quantization import Int8WeightOnlyLinear, is_quantized, quantize
from cot_lab.compress.record import history, pruning_report
from cot_lab.compress.recovery import KeepZeros, recover
from cot_lab.core.accounting import model_flops_per_token

__all__ = ["add_outlier_features", "load_model", "save_model", "Measurement", "compare", "disk_bytes", "generate", "generate_latency",
           "measure", "score_latency", "sparse_bytes", "METHODS", "prune", "sparsity_table", "Int8WeightOnlyLinear",
           "is_quantized", "quantize", "history", "pruning_report", "model_flops_per_token", "KeepZeros", "recover"]
