"""Data source ``glacier-scenes``: optical scenes (red, green, blue, nir) + glacier outlines.

A folder holds one or more scenes, each either a pair ``<stem>_RGB_<rest>.tif`` +
``<stem>_B4_<rest>.tif`` (Landsat 7 band 4 = near-infrared) matched by name, or one
stacked 4-band GeoTIFF (red, green, blue, nir) whose name holds neither ``_RGB_`` nor
``_B4_``; plus one outlines file (GPKG, GeoJSON or Shapefile, any CRS; the only vector
file in the folder, or ``outlines=``). Everything geospatial (grid checks, rasterising the
outlines, block splits with a gap, non-overlapping evaluation tiles, robust normalisation)
is ``mars_core.geodata``; this module only finds files, checks the glacier-specific
mistakes and chooses the splits.

Splits (``splits()``):

* ``train``/``val``/``test`` from ``fractions`` by blocks of ``block_tiles`` x
  ``block_tiles`` tiles of each scene with ``gap_tiles`` tiles between splits, or, with
  ``folds: k`` and ``fold: i``, block fold ``i`` as ``val`` and the others as ``train``
  (spatial cross-validation);
* ``all``: every pixel of every scene once, in non-overlapping tiles (how the withheld
  part is judged: ``mars-core evaluate glacier --split all``).

Saturation: 8-bit pixels at 255 are kept (they are most of the bright glacier surface) and
left out of the robust stretch's percentiles only; :meth:`GlacierScenes.saturation` reports
their share per band.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from mars_core.data import InputContract, Normalisation
from mars_core.errors import MarsError
from mars_core.geodata import (
    BlockSplit,
    GeoScene,
    TileDataset,
    VectorLabels,
    block_split,
    fold_split,
    read_vector,
    scene_windows,
    spatial_folds,
)
from mars_core.tasks import TaskKind

BANDS = ["red", "green", "blue", "nir"]
VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp")
RASTER_SUFFIXES = (".tif", ".tiff")
SAMPLE_DIR = Path(__file__).with_name("data")
SATURATED = 255


def find_scenes(folder: Path) -> dict[str, dict[str, Path]]:
    """Scene key -> ``{"rgb": path, "nir": path}`` or ``{"stack": path}``, from file names."""
    rasters = sorted(p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
    scenes: dict[str, dict[str, Path]] = {}
    for p in rasters:
        m = re.match(r"(.*)_(RGB|B4)(_.*)?$", p.stem)
        if m:
            key = m.group(1) + (m.group(3) or "")
            scenes.setdefault(key, {})["rgb" if m.group(2) == "RGB" else "nir"] = p
        else:
            scenes[p.stem] = {"stack": p}
    for key, files in scenes.items():
        if "stack" not in files and len(files) != 2:
            have = next(iter(files.values())).name
            missing = "_B4_ (NIR)" if "rgb" in files else "_RGB_"
            raise MarsError(f"scene {key}: {have} has no matching {missing} file in {folder}")
    if not scenes:
        raise MarsError(f"no scene GeoTIFF in {folder} (expected *_RGB_*.tif + *_B4_*.tif, or a 4-band GeoTIFF)")
    return scenes


def open_scene(key: str, files: dict[str, Path]) -> GeoScene:
    """A 4-band GeoScene (red, green, blue, nir); MarsError for a wrong band count or grid."""
    import rasterio

    for path in files.values():
        with rasterio.open(path) as ds:
            expected = {"rgb": 3, "nir": 1, "stack": 4}[next(k for k, v in files.items() if v == path)]
            if ds.count != expected:
                names = {3: "red, green, blue", 1: "nir"}.get(expected, ", ".join(BANDS))
                raise MarsError(f"{path.name} has {ds.count} band(s); expected {expected} ({names})")
    if "stack" in files:
        return GeoScene.from_files({"stack": files["stack"]}, bands={"stack": BANDS}, key=key)
    return GeoScene.from_files({"rgb": files["rgb"], "nir": files["nir"]},
                               bands={"rgb": BANDS[:3], "nir": BANDS[3:]}, key=key)


def find_outlines(folder: Path, outlines: str | Path | None) -> Path:
    if outlines is not None:
        path = Path(outlines)
        path = path if path.is_absolute() or path.exists() else folder / path
        if not path.exists():
            raise MarsError(f"outlines file not found: {path}")
        return path
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in VECTOR_SUFFIXES)
    if len(found) != 1:
        raise MarsError(f"{folder} must hold exactly one outlines file ({', '.join(VECTOR_SUFFIXES)}), "
                        f"found {len(found)}{': ' + ', '.join(p.name for p in found) if found else ''}; "
                        "or set data.outlines")
    return found[0]


def check_outlines(path: Path, scene: GeoScene, layer: str | None = None) -> None:
    """Refuse an empty outlines layer and outlines that do not overlap the scene."""
    import shapely
    from rasterio.warp import transform_bounds

    geoms, crs, _ = read_vector(path, layer)
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        raise MarsError(f"{path.name}: the outlines layer is empty (no polygon)")
    if crs is None:
        raise MarsError(f"{path.name} has no CRS; give outlines with a CRS (e.g. EPSG:4326)")
    h, w = scene.shape
    t = scene.transform
    xs, ys = (t.c, t.c + t.a * w), (t.f, t.f + t.e * h)
    box = transform_bounds(scene.crs, crs, min(xs), min(ys), max(xs), max(ys), densify_pts=21)
    if not shapely.intersects(shapely.box(*box), shapely.union_all(geoms)):
        bounds = tuple(round(b, 4) for b in box)
        raise MarsError(f"{path.name}: no outline overlaps scene {scene.key} "
                        f"(scene bounds {bounds} in the outlines' CRS)")


class GlacierScenes:
    """See the module docstring. ``root=None``: the bundled sample (a crop of the real scene)."""

    def __init__(self, root: str | None = None, outlines: str | None = None, layer: str | None = None,
                 tile: int = 128, fractions: Sequence[float] = (0.8, 0.2, 0.0), block_tiles: int = 2,
                 gap_tiles: int = 1, seed: int = 0, folds: int | None = None, fold: int = 0,
                 train_overlap: float = 0.875, augment: Sequence[str] = ("flip",),
                 jitter: float = 0.1) -> None:
        self.folder = Path(root) if root is not None else SAMPLE_DIR
        if not self.folder.is_dir():
            raise MarsError(f"data root is not a folder: {self.folder}")
        self.tile = tile
        self.fractions = list(fractions)
        self.block_tiles, self.gap_tiles, self.seed = block_tiles, gap_tiles, seed
        self.folds, self.fold = folds, fold
        if not 0.0 <= train_overlap < 1.0:
            raise MarsError(f"data.train_overlap must be in [0, 1), got {train_overlap}")
        self.train_overlap = train_overlap
        from mars_glacier.augment import check_augment

        self.augment = check_augment(augment)
        self.jitter = jitter
        files = find_scenes(self.folder)
        self.keys = sorted(files)
        self.scenes = [open_scene(k, files[k]) for k in self.keys]
        self.outlines = find_outlines(self.folder, outlines)
        for s in self.scenes:
            check_outlines(self.outlines, s, layer)
        spec = VectorLabels(self.outlines, burn_value=1, layer=layer)
        self.labels = [spec.bind(s) for s in self.scenes]
        self.norm = Normalisation.robust(len(BANDS), p_low=2, p_high=98, saturated=[SATURATED])

    @cached_property
    def _blocks(self) -> list[BlockSplit | None]:
        out: list[BlockSplit | None] = []
        for s in self.scenes:
            h, w = s.shape
            if h < self.tile or w < self.tile:
                out.append(None)  # too small for a block split; still evaluated under "all"
            elif self.folds:
                f = spatial_folds(h, w, self.tile, self.folds, self.block_tiles, self.seed)
                out.append(fold_split(h, w, self.tile, f, self.fold, self.block_tiles, self.gap_tiles))
            else:
                out.append(block_split(h, w, self.tile, self.fractions, self.block_tiles, self.gap_tiles, self.seed))
        return out

    def _windows(self, split: str) -> list[Any]:
        if split == "all":
            return [w for i, s in enumerate(self.scenes) for w in scene_windows(i, s.shape, self.tile, 0.0)]
        overlap = self.train_overlap if split == "train" else 0.0
        return [w for i, b in enumerate(self._blocks) if b is not None for w in b.windows(split, i, overlap)]

    def splits(self) -> list[str]:
        return [s for s in ("train", "val", "test") if self._windows(s)] + ["all"]

    def dataset(self, split: str) -> TileDataset:
        if split not in ("train", "val", "test", "all"):
            raise MarsError(f"split '{split}' is unknown; allowed: train, val, test, all")
        windows = self._windows(split)
        if not windows:
            raise MarsError(f"split '{split}' is empty for {self.folder} (scenes {', '.join(self.keys)})")
        return TileDataset(self.scenes, windows, self.labels, self.norm)

    def input_contract(self) -> InputContract:
        return InputContract(kind=TaskKind.SEGMENTATION, bands=list(BANDS), normalisation=self.norm,
                             tile_size=self.tile, classes=["other", "glacier"], min_component_px=4)

    def train_augmentation(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        from mars_glacier.augment import make_augmentation

        return make_augmentation(self.augment, self.jitter)

    def saturation(self) -> dict[str, float]:
        """Share of pixels at 255 per band over all scenes (reported, never removed)."""
        from rasterio.windows import Window

        counts = np.zeros(len(BANDS))
        total = 0
        for s in self.scenes:
            h, w = s.shape
            raw, _ = s.read(Window(0, 0, w, h))
            counts += (raw == SATURATED).reshape(len(BANDS), -1).sum(1)
            total += h * w
        return {b: float(c / max(total, 1)) for b, c in zip(BANDS, counts, strict=True)}
