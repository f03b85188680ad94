"""Experiment tracking: the engine-facing protocol and the MLflow implementation.

The MLflow parts are re-exported lazily: importing ``mlflow`` costs about a second, which
commands that never track (``mars-core plugins``) should not pay.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MlflowTracker": "mars_core.tracking.mlflow_tracker",
    "tracker_for": "mars_core.tracking.mlflow_tracker",
    "LoadedModel": "mars_core.tracking.model_io",
    "load_model": "mars_core.tracking.model_io",
    "save_model_dir": "mars_core.tracking.model_io",
    "list_models": "mars_core.tracking.registry_ops",
    "tracking_uri": "mars_core.tracking.store",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
