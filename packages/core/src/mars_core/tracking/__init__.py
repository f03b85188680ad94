"""Experiment tracking: the engine-facing protocol and the MLflow implementation."""
