"""The notebook UI kit: panel base and error display, formatting, figures, live plots, exercise checks.

The only shared code that imports ipywidgets.
"""
