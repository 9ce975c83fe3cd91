"""cot-lab: learn compute-optimal training by doing it.

    import cot_lab as cl
    cfg = cl.ModelConfig(d_model=128, n_layer=4, n_head=4)
    run = cl.train(cfg, cl.load_corpus("synthetic"), flops=3e11)

Public re-exports only; the code lives in `core/` (what every notebook uses), `data/` (corpora),
`ui/` (the notebook kit) and one package per course topic (`start`, `budgets`, `scaling`, `compress`, `inference`,
`hparams`, `moe`, `evaluation`).
Importing defines names only: no seeds, no downloads, no device initialisation, and neither
ipywidgets, matplotlib nor transformers is imported until something needs it.
"""
__version__ = "0.1.0"

from cot_lab.budgets.budget import Budget
from cot_lab.budgets.gpus import GPUS, gpu
from cot_lab.compress import compare, measure, prune, pruning_report, quantize, recover
from cot_lab.core.accounting import (ParamCount, active_params, count_params, flops_breakdown, flops_per_token,
                                     model_flops_per_token, training_flops)
from cot_lab.core.callbacks import Callback, ProgressBar, TrainState
from cot_lab.core.checkpoint import load_model, save_model
from cot_lab.core.config import ModelConfig, build_model, config_of, experts_implementation
from cot_lab.core.device import autocast_dtype, detect_device, device_name, measure_peak_flops, resolve_device
from cot_lab.core.evaluate import evaluate_loss
from cot_lab.core.law import CHINCHILLA, EPOCH_REPLICATION, ScalingLaw
from cot_lab.core.paths import home
from cot_lab.core.profiles import Profile, profile
from cot_lab.core.recipe import batch_size_for, default_lr
from cot_lab.core.runs import Run, RunStore
from cot_lab.core.shapes import ladder_flops_per_token, preset, size_ladder
from cot_lab.core.shipped import shipped_model
from cot_lab.core.skills import SkillReport, loss_by_skill
from cot_lab.core.training import train, train_many
from cot_lab.data import Corpus, load_corpus
from cot_lab.data.synthetic_shift import ShiftSpec
from cot_lab.deploy import Registry, drift_monitor, serve
from cot_lab.evaluation import (GateReport, SliceLossCallback, add_junk, contaminate, datasheet, dedup,
                                document_losses, evaluation_gate, evaluation_gate_from_losses, exact_match_rate,
                                membership_report, memorisation_curve, ngram_overlap, quality_filter)
from cot_lab.hparams import (HparamSweep, NoiseScale, NoiseScaleCallback, batch_sweep, coordinate_check,
                             gradient_noise_scale, lr_sweep, width_sweeps)
from cot_lab.inference import (BatchServing, LifetimeCost, LifetimeOptimum, ModelCost, ServingReport, kv_bytes_per_token,
                               lifetime_cost, lifetime_optimum, measure_memory_bandwidth, measure_serving)
from cot_lab.lab import setup_notebook
from cot_lab.moe import RouterCallback, RouterStats, check_accounting, moe_ladder, moe_shape, router_stats
from cot_lab.scaling.fit import fit_scaling_law
from cot_lab.scaling.isoflop import envelope_frontier, fit_isoflop_parabolas
from cot_lab.scaling.sweep import isoflop_plan, run_sweep
from cot_lab.scaling.sweep_fit import SweepFit, fit_sweep

__all__ = [
    # models and their accounting
    "ModelConfig", "build_model", "config_of", "experts_implementation", "preset", "size_ladder", "ladder_flops_per_token", "ParamCount", "active_params", "count_params",
    "flops_breakdown", "flops_per_token", "model_flops_per_token", "training_flops",
    # devices and budgets
    "autocast_dtype", "detect_device", "device_name", "measure_peak_flops", "resolve_device", "GPUS", "gpu", "Budget",
    # data, training, runs, model files
    "Corpus", "load_corpus", "train", "train_many", "default_lr", "batch_size_for", "Callback", "ProgressBar", "TrainState",
    "evaluate_loss", "loss_by_skill", "SkillReport", "Run", "RunStore", "load_model", "save_model", "shipped_model", "home", "Profile", "profile",
    "setup_notebook",
    # scaling laws and sweeps
    "ScalingLaw", "CHINCHILLA", "EPOCH_REPLICATION", "fit_scaling_law", "fit_isoflop_parabolas", "envelope_frontier",
    "isoflop_plan", "run_sweep", "SweepFit", "fit_sweep",
    # compression
    "prune", "pruning_report", "quantize", "measure", "compare", "recover",
    # training vs inference cost
    "lifetime_optimum", "LifetimeOptimum", "lifetime_cost", "LifetimeCost", "ModelCost", "measure_serving",
    "ServingReport", "BatchServing", "kv_bytes_per_token", "measure_memory_bandwidth",
    # batch size and learning rate
    "gradient_noise_scale", "NoiseScale", "NoiseScaleCallback", "lr_sweep", "batch_sweep", "HparamSweep",
    "coordinate_check", "width_sweeps",
    # dense vs Mixture-of-Experts
    "moe_shape", "moe_ladder", "router_stats", "RouterStats", "RouterCallback", "check_accounting",
    # evaluation and data quality
    "ngram_overlap", "contaminate", "dedup", "evaluation_gate", "evaluation_gate_from_losses", "GateReport",
    "document_losses", "ShiftSpec", "membership_report", "exact_match_rate", "memorisation_curve", "add_junk",
    "quality_filter", "datasheet", "SliceLossCallback",
    # deployment
    "Registry", "serve", "drift_monitor",
]
