"""``rsl-series``: a site's coregistered dates as T-date samples, built on ``mars_core.geodata``.

Layout under ``root``: one folder per site holding its dates ``dNN.tif`` (or any names
matched by ``date_glob``, ordered by acquisition time, else by name) and, per date, the
masks ``rsl_dNN.tif`` (lineae visible at that date) and ``change_dNN.tif`` (lineae grown
since the previous date). ``mars-core rsl coregister`` output fits once renamed.

Why this design:

* A site with N dates gives N - T + 1 samples of T consecutive dates (a
  ``mars_core.geodata.TimeSeries`` each; ``image1`` oldest ... ``imageT`` newest, with
  ``times``). The target is a mask of the NEWEST date: ``target: change`` (lineae grown
  between the last two dates: the change map between consecutive dates; older dates give
  context) or ``target: rsl`` (every lineae visible at that date: the per-date RSL mask).
* The split is BY SITE (``scene_split`` with a group per site): windows of one site share
  dates and terrain, so a split by window or by tile would leak. 256-px tiles that never
  overlap outside training.
* Normalisation is fixed, ``DN / dn_max`` (10-bit RDR RED by default), stored in the
  contract, never per tile.

``root: null`` is the bundled SYNTHETIC sample.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from mars_core.data import InputContract, Normalisation
from mars_core.errors import MarsError
from mars_core.geodata import GeoScene, RasterLabels, TileDataset, TimeSeries, scene_split, scene_windows
from mars_core.geodata.labels import BoundLabels
from mars_core.tasks import TaskKind

SPLITS = ("train", "val", "test")
ALL = "all"
MASK_PREFIXES = ("rsl_", "change_")


def sample_root() -> Path:
    """The bundled SYNTHETIC sample (see ``sample/README.md``)."""
    return Path(str(resources.files("mars_rsl") / "sample"))


@dataclass(frozen=True)
class Window:
    """T consecutive dates of one site and the mask of the newest."""

    key: str
    site: str
    series: TimeSeries
    labels: BoundLabels | None
    shape: tuple[int, int]


class RSLSeries:
    """The ``rsl-series`` data source (see the module docstring)."""

    def __init__(self, root: str | None = None, dates: int = 2, target: Literal["change", "rsl"] = "change",
                 tile: int = 256, overlap: float = 0.0, split: dict[str, list[str]] | Sequence[float] = (0.6, 0.1, 0.3),
                 split_seed: int = 0, dn_max: float = 1023.0, date_glob: str = "d*.tif", band: str = "hirise_red",
                 grid_tolerance: float = 0.01, min_component_px: int = 5) -> None:
        if int(dates) < 2:
            raise MarsError(f"data.dates must be >= 2 (change detection over T dates), got {dates}")
        if target not in ("change", "rsl"):
            raise MarsError(f"data.target must be 'change' or 'rsl', got '{target}'")
        if tile % 16:
            raise MarsError(f"data.tile must be a multiple of 16 (the U-Net pools 4 times), got {tile}")
        if not 0 <= overlap < 1:
            raise MarsError("data.overlap must be in [0, 1)")
        self.root = Path(root) if root else sample_root()
        self.T, self.target, self.tile, self.overlap = int(dates), target, int(tile), float(overlap)
        self.dn_max, self.band, self.date_glob = float(dn_max), band, date_glob
        self.grid_tolerance, self.min_component_px = grid_tolerance, min_component_px
        self.windows = self._scan()
        sites = sorted({w.site for w in self.windows})
        if not isinstance(split, dict):
            split = [float(f) for f in split]
        else:
            split = {k: [w.key for w in self.windows if w.site in v] for k, v in split.items()}
        keys = scene_split([w.key for w in self.windows], split, split_seed, group_regex=r"^(.*)__w\d+$")
        by_key = {w.key: w for w in self.windows}
        self.assignment = {k: [by_key[x] for x in v] for k, v in keys.items()}
        self.sites = sites

    def _scan(self) -> list[Window]:
        if not self.root.is_dir():
            raise MarsError(f"data root not found: {self.root}")
        out: list[Window] = []
        for site in sorted(p for p in self.root.iterdir() if p.is_dir()):
            files = sorted(f for f in site.glob(self.date_glob) if not f.name.startswith(MASK_PREFIXES))
            if not files:
                continue
            if len(files) < self.T:
                raise MarsError(f"site {site.name} has {len(files)} date(s), fewer than data.dates={self.T}")
            scenes = [GeoScene.from_files({"img": f}, bands=[self.band], key=f.stem, time=_acquired(f),
                                          grid_tolerance=self.grid_tolerance) for f in files]
            ordered = TimeSeries.of(scenes, key=site.name, grid_tolerance=self.grid_tolerance).scenes
            for i in range(len(ordered) - self.T + 1):
                dates = ordered[i:i + self.T]
                newest = dates[-1].files[0].path
                series = TimeSeries.of(dates, key=f"{site.name}__w{i:02d}", grid_tolerance=self.grid_tolerance)
                mask = newest.with_name(f"{self.target}_{newest.name}")
                labels = (RasterLabels(mask, label_map={0: 0, 1: 1}, grid_tolerance=self.grid_tolerance).bind(series)
                          if mask.exists() else None)
                out.append(Window(f"{site.name}__w{i:02d}", site.name, series, labels, series.shape))
        if not out:
            raise MarsError(f"no site folders with dates matching '{self.date_glob}' under {self.root}")
        return out

    # -- DataSource protocol ---------------------------------------------------------------
    def splits(self) -> list[str]:
        return [*(s for s in SPLITS if self.assignment.get(s)), ALL]

    def split_sites(self) -> dict[str, list[str]]:
        return {k: sorted({w.site for w in v}) for k, v in self.assignment.items()}

    def dataset(self, split: str) -> Dataset:
        if split not in self.splits():
            raise MarsError(f"split '{split}' is empty or unknown; available: {', '.join(self.splits())}")
        wins = self.windows if split == ALL else self.assignment[split]
        overlap = self.overlap if split == "train" else 0.0
        tiles = [t for i, w in enumerate(wins) for t in scene_windows(i, w.shape, self.tile, overlap)]
        return TileDataset([w.series for w in wins], tiles, [w.labels for w in wins], self.normalisation(),
                           missing_labels="ignore")

    def normalisation(self) -> Normalisation:
        return Normalisation(mean=[0.0], std=[self.dn_max])

    def input_contract(self) -> InputContract:
        return InputContract(kind=TaskKind.CHANGE_DETECTION, bands=[self.band], n_inputs=self.T,
                             normalisation=self.normalisation(), tile_size=self.tile,
                             classes=["background", "rsl-grown" if self.target == "change" else "rsl"],
                             min_component_px=self.min_component_px)

    def train_augmentation(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        return None


def rsl_series(root: str | None = None, **params: Any) -> RSLSeries:
    """Factory registered as ``rsl-series``; ``root=None`` is the bundled SYNTHETIC sample."""
    return RSLSeries(root, **params)


TIME_TAGS = ("ACQUISITION_TIME", "ACQUISITION_DATE", "START_TIME", "IMAGE_TIME", "DATE_ACQUIRED")


def _acquired(path: Path) -> str | None:
    """Acquisition time from the GeoTIFF tags (the tags ``mars-core predict`` reads too)."""
    import rasterio

    with rasterio.open(path) as ds:
        tags = ds.tags()
    return next((tags[k] for k in TIME_TAGS if tags.get(k)), None)


def site_of(key: str) -> str:
    m = re.match(r"^(.*)__w\d+$", key)
    return m.group(1) if m else key
