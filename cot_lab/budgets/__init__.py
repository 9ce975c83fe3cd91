"""Notebook 01, compute budgets: GPU catalog, GPU-hours <-> FLOPs <-> USD <-> kWh, FLOP accountings, panel, checks."""
