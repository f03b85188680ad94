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
        """The keys of the default number of dates (two for change detection); use
        :func:`date_keys` when the number of dates is known."""
        return date_keys(self, 2 if self is TaskKind.CHANGE_DETECTION else 1)

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
    #: Classification over scenes: ``"package.module:function"`` import paths, resolved only
    #: when predicting (so listing tasks imports nothing heavy). Signatures in
    #: :mod:`mars_core.raster.classify` (``ChunkFilter``, ``SceneSummariser``).
    chunk_filter: str | None = None
    scene_summariser: str | None = None


#: Batch key of the acquisition times of change detection's dates: float [B,T], days since
#: J2000 (2000-01-01T12:00 UTC), NaN when unknown. Only models whose ``forward`` has a
#: ``times`` parameter receive it (as a keyword).
TIMES_KEY = "times"


def date_keys(kind: TaskKind, n_inputs: int) -> tuple[str, ...]:
    """``image`` for one input; ``image1..imageT`` for T dates (in date order)."""
    if kind is not TaskKind.CHANGE_DETECTION:
        return ("image",)
    if n_inputs < 2:
        raise ValueError(f"change detection needs at least 2 dates, got {n_inputs}")
    return tuple(f"image{i}" for i in range(1, n_inputs + 1))


def input_keys_of(kind: TaskKind, batch: Mapping[str, Any]) -> tuple[str, ...]:
    """The input keys present in ``batch``: for change detection ``image1, image2, ...`` up to
    the first missing number, so the engine needs no T of its own."""
    if kind is not TaskKind.CHANGE_DETECTION:
        return ("image",)
    n = 2
    while f"image{n + 1}" in batch:
        n += 1
    return date_keys(kind, n)


def model_inputs(kind: TaskKind, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return tuple(batch[k] for k in input_keys_of(kind, batch))


def target_of(kind: TaskKind, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return batch[kind.target_key]


_TAKES_TIMES: dict[type, bool] = {}


def takes_times(model: Any) -> bool:
    """Whether ``model.forward`` names a ``times`` parameter (looked through DDP and
    ``torch.compile`` wrappers; cached per class, as a signature does not change)."""
    inner = model
    for _ in range(4):  # DDP(compiled(model)) at most; a wrapper's forward hides the signature
        nxt = getattr(inner, "_orig_mod", None)
        if nxt is None and type(inner).__name__ == "DistributedDataParallel":
            nxt = getattr(inner, "module", None)
        if nxt is None:
            break
        inner = nxt
    cls = type(inner)
    if cls not in _TAKES_TIMES:
        import inspect

        try:
            params = inspect.signature(inner.forward).parameters
        except (TypeError, ValueError):
            params = {}
        p = params.get(TIMES_KEY)
        _TAKES_TIMES[cls] = p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    return _TAKES_TIMES[cls]


def forward(kind: TaskKind, model: torch.nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``model(*dates)``, plus ``times=batch["times"]`` for a model that takes it (a batch
    without times gives such a model NaN times, i.e. "unknown")."""
    inputs = model_inputs(kind, batch)
    if kind is TaskKind.CHANGE_DETECTION and takes_times(model):
        times = batch.get(TIMES_KEY)
        if times is None:
            import torch

            times = torch.full((inputs[0].shape[0], len(inputs)), float("nan"), device=inputs[0].device)
        return model(*inputs, times=times)
    return model(*inputs)


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
