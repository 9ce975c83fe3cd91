"""Notebook 02, scaling laws: IsoFLOP sweeps, Approaches 1-3 with intervals, held-out prediction, plots, panels."""
