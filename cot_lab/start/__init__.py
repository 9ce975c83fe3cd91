"""Notebook 00, start here: the training panel (corpus, size and budget sliders, Train, a live loss curve)."""
