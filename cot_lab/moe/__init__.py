"""Notebook 06, dense vs Mixture-of-Experts: do experts buy quality per FLOP?

shapes    MoE shapes matched to a dense model's active FLOPs (granularity G = d_ff / d_expert), on the ladder
flops     the kit's parameter and FLOP counts checked against the model's tensors and torch's FlopCounterMode
router    the router's health per layer: expert load, Switch balance loss, z-loss, entropies, dead experts, overflow
callback  a trainer hook recording the router's health over training
compare   dense against MoE at matched active FLOPs, memory and wall-clock; the effective-parameter multiplier
measure   training milliseconds per step and serving memory and speed of dense / MoE pairs, measured
pilot     the shipped set (precomputed/moe/): MoE partners of the laptop sweep, the router study, timing, serving
plots, panel, checks   notebook 06's figures, router health panel and exercise checkers
"""
from cot_lab.moe.callback import RouterCallback, RouterHistory
from cot_lab.moe.flops import (AccountingCheck, check_accounting, measured_flops_per_token, measured_params,
                               router_overhead)
from cot_lab.moe.router import RouterStats, router_stats, router_stats_of_rows, routing_stats
from cot_lab.moe.shapes import expert_width, flops_mismatch, granularity_of, moe_ladder, moe_shape

__all__ = ["RouterCallback", "RouterHistory", "AccountingCheck", "check_accounting", "measured_flops_per_token",
           "measured_params", "router_overhead", "RouterStats", "router_stats", "router_stats_of_rows", "routing_stats",
           "expert_width", "flops_mismatch", "granularity_of", "moe_ladder", "moe_shape"]
