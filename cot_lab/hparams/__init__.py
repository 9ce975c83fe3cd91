"""Notebook 05, batch size and learning rate: which hyperparameters waste compute.

noise_scale   McCandlish et al.'s gradient noise scale B_simple, two-batch estimator and trainer hook
"""
from cot_lab.hparams.noise_scale import (NoiseScale, NoiseScaleCallback, NoiseScaleTracker, gradient_noise_scale,
                                         measure_noise_scale, two_batch_estimates)

__all__ = ["NoiseScale", "NoiseScaleCallback", "NoiseScaleTracker", "gradient_noise_scale", "measure_noise_scale",
           "two_batch_estimates"]
