"""What every topic uses: config, shapes, accounting, device, training, recipe, executor, runs, evaluation, results.

Imports no topic and no ui (tests/test_layout.py checks it).
"""
