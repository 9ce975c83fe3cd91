"""Notebook 05, batch size and learning rate: which hyperparameters waste compute.

noise_scale   McCandlish et al.'s gradient noise scale B_simple, two-batch estimator and trainer hook
sweeps        learning-rate and batch-size sweeps at one budget (resumable, rates trained as one batched group)
width         width transfer: coordinate check and LR sweeps across widths, standard parametrisation and muP
"""
from cot_lab.hparams.noise_scale import (NoiseScale, NoiseScaleCallback, NoiseScaleTracker, gradient_noise_scale,
                                         measure_noise_scale, two_batch_estimates)
from cot_lab.hparams.sweeps import HparamSweep, batch_sweep, loss_at_lr, lr_sweep
from cot_lab.hparams.width import coordinate_check, growth_exponents, transfer_table, width_sweeps

__all__ = ["NoiseScale", "NoiseScaleCallback", "NoiseScaleTracker", "gradient_noise_scale", "measure_noise_scale",
           "two_batch_estimates", "HparamSweep", "lr_sweep", "batch_sweep", "loss_at_lr",
           "coordinate_check", "growth_exponents", "transfer_table", "width_sweeps"]
