"""Hyper-parameter sweeps on Optuna: search spaces from the command line, one training per
trial through the engine, MLflow parent/child runs, and the sweep's report.

Optuna distributes the trials (its RDB storage is the coordination point between
workers); nothing here schedules work itself. Modules: :mod:`.space` (parsing),
:mod:`.trial` (one trial), :mod:`.study` (storage, worker loop, parent run),
:mod:`.report` (table, CSV, chart, JSON).
"""
