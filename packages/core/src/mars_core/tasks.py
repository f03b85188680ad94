"""Tasks and the three task kinds the engine serves.

The kind decides how a batch is fed to a model and what the target is; everything else
about a task (data, model, loss, metrics, defaults) is configuration resolved through the
registries, so a user can swap any part with ``--set``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported by the engine, never by the CLI's start-up path
    import torch


class TaskKind(str, Enum):
    SEGMENTATION = "segmentation"
    CHANGE_DETECTION = "change_detection"
    CLASSIFICATION = "classification"

    @property
    def input_keys(self) -> tuple[str, ...]:
        return ("image1", "image2") if self is TaskKind.CHANGE_DETECTION else ("image",)

    @property
    def target_key(self) -> str:
        return "label" if self is TaskKind.CLASSIFICATION else "mask"


@dataclass(frozen=True)
class TaskSpec:
    """A named recipe for ``mars-core run``.

    ``default_config`` is the YAML file shipped inside the task package; it must name the
    data source, model, loss and metrics, and may set any trainer default.
    """

    name: str
    kind: TaskKind
    default_config: Path
    distribution: str
    description: str = ""


def model_inputs(kind: TaskKind, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(batch[k] for k in kind.input_keys)


def target_of(kind: TaskKind, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return batch[kind.target_key]


def forward(kind: TaskKind, model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return model(*model_inputs(kind, batch))


def probabilities(kind: TaskKind, logits: torch.Tensor) -> torch.Tensor:
    """Binary maps use one logit channel (sigmoid); classification uses softmax over K."""
    if kind is TaskKind.CLASSIFICATION:
        return logits.float().softmax(dim=1)
    return logits.float().sigmoid()


def move_batch(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    import torch

    return {
        k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()
    }
