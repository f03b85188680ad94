"""``TileDataset``: tiles of scenes read window by window, normalised, with an ignore mask.

Items are dicts: ``image`` [C,H,W] float32 for a :class:`GeoScene`, or ``image1`` ..
``imageT`` for a :class:`TimeSeries` of T dates; ``mask`` [1,H,W] float32 holding the
class of each pixel or IGNORE (255) where the pixel is nodata in any band of any date,
outside the label coverage, the labels' ignore value, or not owned by this tile (so that
each evaluated pixel is scored once); ``index`` (int64); for a time series also ``times``
float32 [T], days since J2000 (NaN when a date's time is unknown, see ``mars_core.dates``).
Invalid pixels of the images are 0 after normalisation, the normalised mean of a fixed
normalisation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from rasterio.windows import Window
from torch.utils.data import Dataset

from mars_core.data import Normalisation
from mars_core.errors import MarsError
from mars_core.geodata.labels import BoundLabels
from mars_core.geodata.scene import GeoScene, TimeSeries
from mars_core.geodata.windows import TileWindow
from mars_core.masking import IGNORE

RawCheck = Callable[[GeoScene, np.ndarray], None]


class TileDataset(Dataset):
    """See the module docstring. ``labels[i]`` are the bound labels of ``scenes[i]`` (None:
    ``missing_labels`` says whether its pixels are ignored or background); ``raw_check``
    sees every raw window before normalisation (a task may refuse values its
    configuration does not fit)."""

    def __init__(self, scenes: Sequence[GeoScene | TimeSeries], windows: Sequence[TileWindow],
                 labels: Sequence[BoundLabels | None] | None, normalisation: Normalisation,
                 raw_check: RawCheck | None = None,
                 missing_labels: Literal["ignore", "background"] = "ignore") -> None:
        self.scenes = list(scenes)
        self.windows = list(windows)
        self.labels = list(labels) if labels is not None else [None] * len(self.scenes)
        if len(self.labels) != len(self.scenes):
            raise ValueError("labels must have one entry (or None) per scene")
        bad = [w for w in self.windows if not 0 <= w.scene < len(self.scenes)]
        if bad:
            raise ValueError(f"window of scene {bad[0].scene} but there are {len(self.scenes)} scenes")
        for s in self.scenes:
            n = len(s.scenes[0].bands if isinstance(s, TimeSeries) else s.bands)
            if n != len(normalisation.mean):
                raise MarsError(f"scene {s.key} has {n} band(s) but the normalisation has {len(normalisation.mean)}")
        self.normalisation = normalisation
        self.raw_check = raw_check
        self.missing_labels = missing_labels

    def __len__(self) -> int:
        return len(self.windows)

    @staticmethod
    def _dates(scene: GeoScene | TimeSeries) -> list[GeoScene]:
        return list(scene.scenes) if isinstance(scene, TimeSeries) else [scene]

    def _inside(self, w: TileWindow) -> tuple[Window, tuple[slice, slice]]:
        """The part of the tile inside its scene, and where it goes in the tile."""
        h, w_ = self.scenes[w.scene].shape
        r0, c0 = max(w.row, 0), max(w.col, 0)
        r1, c1 = min(w.row + w.size, h), min(w.col + w.size, w_)
        return Window(c0, r0, c1 - c0, r1 - r0), (slice(r0 - w.row, r1 - w.row), slice(c0 - w.col, c1 - w.col))

    def labels_of(self, i: int) -> np.ndarray:
        """uint8 [size, size] labels of window ``i`` with IGNORE outside what it owns (no images read)."""
        w = self.windows[i]
        win, (rs, cs) = self._inside(w)
        out = np.full((w.size, w.size), IGNORE, dtype=np.uint8)
        lab = self.labels[w.scene]
        if lab is not None:
            out[rs, cs] = lab.read(win)
        elif self.missing_labels == "background":
            out[rs, cs] = 0
        r0, r1, c0, c1 = w.clipped_own
        owned = np.zeros_like(out, dtype=bool)
        owned[r0 - w.row : r1 - w.row, c0 - w.col : c1 - w.col] = True
        out[~owned] = IGNORE
        return out

    def __getitem__(self, i: int) -> dict[str, Any]:
        w = self.windows[i]
        scene = self.scenes[w.scene]
        win, (rs, cs) = self._inside(w)
        mask = self.labels_of(i)
        out: dict[str, Any] = {}
        dates = self._dates(scene)
        for t, date in enumerate(dates):
            raw, valid = date.read(win)
            if self.raw_check is not None:
                self.raw_check(date, raw)
            norm = date.normalisation(self.normalisation)
            mean = np.asarray(norm.mean, dtype=np.float32)[:, None, None]
            std = np.asarray(norm.std, dtype=np.float32)[:, None, None]
            img = np.zeros((raw.shape[0], w.size, w.size), dtype=np.float32)
            img[:, rs, cs] = np.where(valid, (raw - mean) / std, 0.0)
            sub = mask[rs, cs]
            sub[~valid] = IGNORE
            key = "image" if isinstance(scene, GeoScene) else f"image{t + 1}"
            out[key] = torch.from_numpy(img)
        if isinstance(scene, TimeSeries):
            from mars_core.dates import days_since_j2000

            out["times"] = torch.tensor([float("nan") if d.time is None else days_since_j2000(d.time) for d in dates],
                                        dtype=torch.float32)
        out["mask"] = torch.from_numpy(mask.astype(np.float32)[None])
        out["index"] = torch.tensor(i)
        return out

    def has_class(self, value: int = 1) -> list[bool]:
        """Per window: does it own at least one pixel of class ``value``? Labels only."""
        return [bool((self.labels_of(i) == value).any()) for i in range(len(self.windows))]
