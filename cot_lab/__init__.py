"""cot-lab: learn compute-optimal training by doing it.

    import cot_lab as cl
    cfg = cl.ModelConfig(d_model=128, n_layer=4, n_head=4)
    run = cl.train(cfg, cl.load_corpus("synthetic"), flops=3e11)

Importing defines names only: no seeds, no downloads, no device initialisation.
"""
__version__ = "0.1.0"

from .accounting import ParamCount, active_params, count_params, flops_breakdown, flops_per_token, training_flops
from .budget import Budget
from .callbacks import Callback, ProgressBar, TrainState
from .compress import compare, load_model, measure, prune, pruning_report, quantize, recover, save_model
from .config import ModelConfig, build_model, preset
from .data import Corpus, load_corpus
from .evaluate import evaluate_loss
from .fitting import SweepFit, fit_sweep
from .hardware import GPUS, autocast_dtype, detect_device, device_name, gpu, measure_peak_flops, resolve_device
from .paths import home
from .profiles import Profile, profile
from .runs import Run, RunStore
from .sweep import isoflop_plan, run_sweep
from .scaling import CHINCHILLA, EPOCH_REPLICATION, ScalingLaw, envelope_frontier, fit_isoflop_parabolas, fit_scaling_law
from .train import default_lr, train

__all__ = [
    "ParamCount", "active_params", "count_params", "flops_breakdown", "flops_per_token", "training_flops",
    "Budget", "Callback", "ProgressBar", "TrainState", "ModelConfig", "build_model", "preset", "Corpus",
    "load_corpus", "evaluate_loss", "GPUS", "autocast_dtype", "detect_device", "device_name", "gpu",
    "measure_peak_flops", "resolve_device", "home", "Profile", "profile", "Run", "RunStore", "CHINCHILLA", "EPOCH_REPLICATION", "ScalingLaw", "envelope_frontier",
    "fit_isoflop_parabolas", "fit_scaling_law", "default_lr", "train",
    "SweepFit", "fit_sweep", "isoflop_plan", "run_sweep",
    "compare", "load_model", "measure", "prune", "pruning_report", "quantize", "recover", "save_model",
]
