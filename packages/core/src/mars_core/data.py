"""What a data source provides, and the input contract stored with every model.

The input contract is what a model expects of its input (bands and their order,
normalisation, tile size). It is produced by the data source at training time, stored with
the model in MLflow, and checked before any prediction so that a model is never silently
fed bands in another order or another scaling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch.utils.data import Dataset

from mars_core.errors import MarsError
from mars_core.tasks import TaskKind

Batch = dict[str, Any]


class Normalisation(BaseModel):
    """How raw raster values become model input: a method, stored in the contract.

    ``method="fixed"`` (the default, and what every model saved before the field existed
    means): ``(x - mean) / std`` with constant per-band ``mean``/``std``.

    ``method="robust"``: a per-scene percentile stretch, ``s = (x - lo) / (hi - lo)`` where
    ``lo``/``hi`` are the ``p_low``/``p_high`` percentiles of each band of *the scene being
    read* (valid pixels only: nodata and the raw values listed in ``saturated`` are left
    out), followed by ``(s - mean) / std`` (0 and 1 by default). The contract stores the
    method and its parameters, never the numbers of one training scene, so an 8-bit and a
    10-bit product of the same scene give the same model input. Per scene, robust reduces
    to a fixed affine map: :meth:`for_scene` returns it, which is how tiles and whole-scene
    prediction share one code path (``mars_core.geodata.normalise``).
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["fixed", "robust"] = "fixed"
    mean: list[float]
    std: list[float]
    p_low: float = 2.0
    p_high: float = 98.0
    saturated: list[float] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError("normalisation mean and std must have the same length")
        if any(s <= 0 for s in self.std):
            raise ValueError("normalisation std must be positive")
        if not 0 <= self.p_low < self.p_high <= 100:
            raise ValueError("normalisation percentiles must satisfy 0 <= p_low < p_high <= 100")
        return self

    @classmethod
    def robust(cls, n_bands: int, p_low: float = 2.0, p_high: float = 98.0,
               saturated: Sequence[float] = ()) -> Normalisation:
        """A robust stretch to [0, 1] (at the percentiles) for ``n_bands`` bands."""
        return cls(method="robust", mean=[0.0] * n_bands, std=[1.0] * n_bands, p_low=p_low, p_high=p_high,
                   saturated=list(saturated))

    def for_scene(self, low: Sequence[float], high: Sequence[float]) -> Normalisation:
        """The fixed affine map that this method gives on a scene with these percentiles."""
        if len(low) != len(self.mean) or len(high) != len(self.mean):
            raise ValueError("one low and one high value per band are needed")
        span = [max(float(h) - float(lo), 1e-6) for lo, h in zip(low, high, strict=True)]
        return Normalisation(mean=[float(lo) + m * s for lo, m, s in zip(low, self.mean, span, strict=True)],
                             std=[sd * s for sd, s in zip(self.std, span, strict=True)])

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise [..., C, H, W] in float32 (fixed only: robust needs the scene's statistics)."""
        if self.method != "fixed":
            raise ValueError("robust normalisation needs the scene's statistics: use for_scene(low, high).apply")
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
    #: Number of input scenes: 1, or T >= 2 dates for change detection (``image1..imageT``).
    n_inputs: int = Field(default=1, ge=1)
    #: How the dates are ordered: "chronological" (image1 oldest; predict takes them in that
    #: order) or "unordered" (a model symmetric in its dates).
    date_order: Literal["chronological", "unordered"] = "chronological"
    nodata: float | None = None
    threshold: float = 0.5
    classes: list[str] = Field(default_factory=lambda: ["background", "foreground"])
    #: Classification trained on finer labels: for each class, the sub-classes its training
    #: labels name (training label i = the i-th sub-class, classes in order). Empty: the
    #: training labels are the classes. Evaluation and prediction always use the classes.
    subclasses: dict[str, list[str]] = Field(default_factory=dict)
    package_versions: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _pair_by_default(cls, data: Any) -> Any:
        """A change-detection contract that does not say how many dates means a pair."""
        if isinstance(data, dict) and "n_inputs" not in data and str(getattr(
                data.get("kind"), "value", data.get("kind"))) == TaskKind.CHANGE_DETECTION.value:
            return {**data, "n_inputs": 2}
        return data

    @model_validator(mode="after")
    def _check(self) -> InputContract:
        if TaskKind(self.kind) is TaskKind.CHANGE_DETECTION and self.n_inputs < 2:
            raise ValueError(f"change detection needs n_inputs >= 2 dates, got {self.n_inputs}")
        if TaskKind(self.kind) is not TaskKind.CHANGE_DETECTION and self.n_inputs != 1:
            raise ValueError(f"{TaskKind(self.kind).value} takes one input scene, got n_inputs={self.n_inputs}")
        if TaskKind(self.kind) is TaskKind.CLASSIFICATION and len(self.classes) < 2:
            raise ValueError(f"classification needs at least 2 classes, got {self.classes}")
        if self.subclasses:
            if TaskKind(self.kind) is not TaskKind.CLASSIFICATION:
                raise ValueError("subclasses are for classification only")
            if list(self.subclasses) != list(self.classes) or not all(self.subclasses.values()):
                raise ValueError(f"subclasses must give each class {self.classes}, in order, at least one "
                                 f"sub-class; got {self.subclasses}")
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
    ``image`` or ``image1``..``imageT`` (T = the contract's ``n_inputs`` dates, in date order)
    [C,H,W] float32 already normalised as the contract says (change detection may add
    ``times``: float32 [T], days since 2000-01-01T12:00 UTC, NaN when unknown, passed to
    models whose ``forward`` takes ``times``), plus ``mask`` [1,H,W] float32 in {0,1}
    (255 = ``mars_core.masking.IGNORE`` for pixels kept out of loss and metrics) or
    ``label`` (int64 scalar)."""

    def splits(self) -> Sequence[str]:
        """Available splits among ``train``, ``val``, ``test``."""
        ...

    def dataset(self, split: str) -> Dataset[Batch]: ...

    def input_contract(self) -> InputContract: ...

    def train_augmentation(self) -> Callable[[Batch], Batch] | None:
        """Batch-level augmentation applied on the training device, or None.

        For change detection it must apply the same random parameters to every date
        (``image1..imageT``) and the mask, and leave ``times`` as it is."""
        ...
