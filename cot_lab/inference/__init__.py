"""Notebook 04, training vs inference cost: the lifetime-optimal model (Sardana et al. 2024) in FLOPs, USD and kWh,
and serving speed measured with a real KV cache against this machine's memory-bandwidth ceiling."""
from cot_lab.inference.bandwidth import kv_bytes_per_token, measure_memory_bandwidth
from cot_lab.inference.costs import LifetimeCost, ModelCost, lifetime_cost
from cot_lab.inference.lifetime import LifetimeOptimum, lifetime_optimum
from cot_lab.inference.serving import BatchServing, ServingReport, measure_serving

__all__ = ["LifetimeOptimum", "lifetime_optimum", "LifetimeCost", "ModelCost", "lifetime_cost",
           "measure_serving", "ServingReport", "BatchServing", "kv_bytes_per_token", "measure_memory_bandwidth"]
