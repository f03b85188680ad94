"""What a data source provides, and the input contract stored with every model.

The input contract is what a model expects of its input (bands and their order,
normalisation, tile size). It is produced by the data source at training time, stored with
the model in MLflow, and checked before any prediction so that a model is never silently
fed bands in another order or another scaling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.utils.data import Dataset

from mars_core.errors import MarsError
from mars_core.tasks import TaskKind

Batch = dict[str, Any]


class Normalisation(BaseModel):
    """Per-band affine normalisation applied to raw raster values: ``(x - mean) / std``."""

    model_config = ConfigDict(extra="forbid")

    mean: list[float]
    std: list[float]

    @model_validator(mode="after")
    def _check(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError("normalisation mean and std must have the same length")
        if any(s <= 0 for s in self.std):
            raise ValueError("normalisation std must be positive")
        return self

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise [..., C, H, W] in float32."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(-1, 1, 1)
        return (x.float() - mean) / std


class InputContract(BaseModel):
    """What a trained model expects; stored as ``contract.json`` next to its weights."""

    model_config = ConfigDict(extra="allow")

    kind: TaskKind
    bands: list[str]
    normalisation: Normalisation
    tile_size: int = Field(gt=0)
    n_inputs: int = Field(default=1, ge=1, le=2)
    nodata: float | None = None
    threshold: float = 0.5
    classes: list[str] = Field(default_factory=lambda: ["background", "foreground"])
    package_versions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> InputContract:
        if len(self.normalisation.mean) != len(self.bands):
            raise ValueError(
                f"normalisation has {len(self.normalisation.mean)} values but there are {len(self.bands)} bands"
            )
        return self

    def check_band_count(self, n: int, what: str) -> None:
        if n != len(self.bands):
            raise MarsError(
                f"{what} has {n} band(s) but the model expects {len(self.bands)} ({', '.join(self.bands)})"
            )


@runtime_checkable
class DataSource(Protocol):
    """A task's data. Datasets yield dicts of tensors keyed as the task kind says:
    ``image`` or ``image1``/``image2`` [C,H,W] float32 already normalised as the contract
    says, plus ``mask`` [1,H,W] float32 in {0,1} or ``label`` (int64 scalar)."""

    def splits(self) -> Sequence[str]:
        """Available splits among ``train``, ``val``, ``test``."""
        ...

    def dataset(self, split: str) -> Dataset[Batch]: ...

    def input_contract(self) -> InputContract: ...

    def train_augmentation(self) -> Callable[[Batch], Batch] | None:
        """Batch-level augmentation applied on the training device, or None.

        For pairs it must apply the same random parameters to both dates and the mask."""
        ...
