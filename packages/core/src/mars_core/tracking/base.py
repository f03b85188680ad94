"""What the engine hands to experiment tracking, and the no-op tracker.

The engine only ever talks to a :class:`Tracker`; MLflow is one implementation. Only rank
0 gets a real tracker under ``torchrun``; other ranks get :class:`NullTracker`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from mars_core.config import RunConfig
from mars_core.data import InputContract
from mars_core.tasks import TaskSpec


@dataclass
class RunSummary:
    """Everything known at the end of ``mars-core run``.

    ``model`` holds the best weights (by the monitored metric), on CPU, in eval mode.
    ``metrics`` are the final evaluation of those weights: ``{split: {name: value}}``.
    ``samples`` holds a few validation samples (CPU tensors, input keys, target key and
    ``probs``) for the prediction grid; ``preview`` is the data source's optional
    ``preview(sample) -> list[(title, array)]`` used to render them.
    """

    cfg: RunConfig
    task: TaskSpec
    contract: InputContract
    model: nn.Module
    history: list[dict[str, float]]
    metrics: dict[str, dict[str, float]]
    monitor: str
    mode: str
    best_value: float | None
    best_epoch: int | None
    samples: dict[str, torch.Tensor] | None = None
    preview: Callable[[dict[str, torch.Tensor]], list[tuple[str, Any]]] | None = None
    run_id: str | None = None
    model_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Tracker(Protocol):
    def start(self, cfg: RunConfig, task: TaskSpec, resume_run_id: str | None = None) -> str | None:
        """Open (or reopen, when resuming) a run; log the resolved config. Returns the run id."""
        ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None: ...

    def finish(self, summary: RunSummary) -> str | None:
        """Log final metrics, plots and the model; register it; move the champion alias
        only on improvement. Returns the model URI (or None when nothing was logged)."""
        ...

    def fail(self, reason: str) -> None:
        """Close the run as failed (interrupted or crashed)."""
        ...


class NullTracker:
    """Used on ranks other than 0 and when tracking is disabled."""

    def start(self, cfg: RunConfig, task: TaskSpec, resume_run_id: str | None = None) -> str | None:
        return resume_run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        return None

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        return None

    def finish(self, summary: RunSummary) -> str | None:
        return None

    def fail(self, reason: str) -> None:
        return None
