"""Labels for a scene: a raster on the scene's grid, or vector polygons burned in.

Both give, for a window of the scene, a uint8 array of class values with
:data:`mars_core.masking.IGNORE` (255) where a pixel must not count: the label file's
nodata or ``ignore_value``, or (vector) a pixel outside ``coverage``.
Vector files (GeoPackage, GeoJSON, Shapefile) are read once with pyogrio (fiona when
pyogrio is absent), reprojected to the scene CRS once, and burned window by window with
``rasterio.features.rasterize`` using only the polygons whose bounds meet the window.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from mars_core.errors import MarsError
from mars_core.geodata.grid import check_same_grid, same_crs
from mars_core.geodata.scene import GeoScene, TimeSeries, _open
from mars_core.masking import IGNORE


class BoundLabels(Protocol):
    """Labels tied to one scene's grid."""

    def read(self, window: Window) -> np.ndarray:
        """uint8 [h, w] class values, IGNORE where the pixel must not count."""
        ...


def _grid_of(scene: GeoScene | TimeSeries) -> GeoScene:
    return scene.scenes[0] if isinstance(scene, TimeSeries) else scene


@dataclass(frozen=True)
class RasterLabels:
    """A label raster on the scene's grid. ``label_map`` maps raw values to classes (any
    raw value not in it is an error naming the file); ``ignore_value`` and the file's
    nodata become IGNORE. Without ``label_map`` raw values are the classes."""

    path: Path
    label_map: Mapping[int, int] | None = None
    ignore_value: int | None = None
    band: int = 1
    grid_tolerance: float = 0.01

    def bind(self, scene: GeoScene | TimeSeries) -> _BoundRaster:
        ref = _grid_of(scene)
        with ExitStack() as stack:
            a = _open(ref.files[0].path, stack)
            b = _open(Path(self.path), stack)
            check_same_grid(ref.files[0].path, a, self.path, b, self.grid_tolerance)
            nodata = b.nodata
        return _BoundRaster(self, nodata)


class _BoundRaster:
    def __init__(self, spec: RasterLabels, nodata: float | None) -> None:
        self.spec = spec
        self.nodata = nodata
        lm = {int(k): int(v) for k, v in (spec.label_map or {}).items()}
        if any(not 0 <= v <= 254 for v in lm.values()):
            raise MarsError(f"label_map classes must be in 0..254 (255 is the ignore value), got {lm}")
        self.label_map = lm

    def read(self, window: Window) -> np.ndarray:
        with rasterio.open(self.spec.path) as ds:
            raw = ds.read(self.spec.band, window=window)
        ignore = np.zeros(raw.shape, dtype=bool)
        for v in (self.spec.ignore_value, self.nodata):
            if v is not None and not np.isnan(v):
                ignore |= raw == v
        if np.issubdtype(raw.dtype, np.floating):
            ignore |= ~np.isfinite(raw)
            raw = np.where(ignore, 0, raw)
        values = np.unique(raw[~ignore]).astype(np.int64)
        if self.label_map:
            bad = [int(v) for v in values if int(v) not in self.label_map]
            if bad:
                raise MarsError(f"mask {Path(self.spec.path).name} holds value(s) {bad} not in label_map "
                                f"{self.label_map}; set label_map for this encoding (e.g. {{1: 1, 255: 0}})")
            lut = np.zeros(max(int(values.max(initial=0)), *self.label_map) + 1, dtype=np.uint8)
            for k, v in self.label_map.items():
                if k >= 0:
                    lut[k] = v
            out = lut[np.clip(raw.astype(np.int64), 0, None)]
        else:
            if values.size and (values.min() < 0 or values.max() > 254):
                raise MarsError(f"mask {Path(self.spec.path).name} holds values outside 0..254 "
                                f"({int(values.min())}..{int(values.max())}); set label_map or ignore_value")
            out = raw.astype(np.uint8)
        out[ignore] = IGNORE
        return out


def read_vector(path: Path, layer: str | int | None = None) -> tuple[list[Any], CRS | None, dict[str, np.ndarray]]:
    """(shapely geometries, CRS, attribute columns) of a vector file, with pyogrio or fiona."""
    import shapely

    if not Path(path).exists():
        raise MarsError(f"vector file not found: {path}")
    try:
        from pyogrio.raw import read as ogr_read
    except ImportError:
        ogr_read = None
    if ogr_read is not None:
        try:
            meta, _, wkb, columns = ogr_read(str(path), layer=layer)
        except Exception as exc:  # pyogrio raises its own DataSourceError / DataLayerError types
            raise MarsError(f"{path}: cannot be read as vector data ({' '.join(str(exc).split())})") from None
        geoms = list(shapely.from_wkb(wkb))
        crs = CRS.from_user_input(meta["crs"]) if meta.get("crs") else None
        return geoms, crs, {name: col for name, col in zip(meta["fields"], columns, strict=True)}
    try:
        import fiona
    except ImportError:
        raise MarsError("reading vector labels needs pyogrio (pip install pyogrio) or fiona") from None
    with fiona.open(str(path), layer=layer) as src:
        crs = CRS.from_user_input(src.crs_wkt) if src.crs_wkt else None
        feats = list(src)
    geoms = [shapely.geometry.shape(f["geometry"]) if f["geometry"] else None for f in feats]
    names = list(feats[0]["properties"]) if feats else []
    return geoms, crs, {n: np.array([f["properties"][n] for f in feats]) for n in names}


@dataclass(frozen=True)
class VectorLabels:
    """Polygons burned into the scene grid.

    Every polygon gets ``burn_value`` (or its ``attribute`` value, mapped by ``value_map``
    when given). Where polygons overlap the largest value wins (class order is priority).
    ``coverage`` (a second vector file) bounds where the labels are complete: pixels
    outside it are IGNORE (without it every pixel of the scene is labelled). ``crs``
    overrides a file without (or with a wrong) CRS. ``all_touched`` as in rasterio.
    """

    path: Path
    burn_value: int = 1
    layer: str | int | None = None
    attribute: str | None = None
    value_map: Mapping[Any, int] | None = None
    coverage: Path | None = None
    crs: str | None = None
    all_touched: bool = False

    def bind(self, scene: GeoScene | TimeSeries) -> _BoundVector:
        ref = _grid_of(scene)
        shapes = self._shapes(Path(self.path), ref, values=True)
        cover = self._shapes(Path(self.coverage), ref, values=False) if self.coverage else None
        return _BoundVector(shapes, cover, ref.transform, self.all_touched)

    def _shapes(self, path: Path, scene: GeoScene, values: bool) -> list[tuple[Any, int]]:
        import shapely

        geoms, crs, columns = read_vector(path, self.layer if values else None)
        if self.crs is not None:
            crs = CRS.from_user_input(self.crs)
        if crs is None:
            raise MarsError(f"{path} has no CRS; set the labels' crs (e.g. EPSG:4326)")
        if scene.crs is None:
            raise MarsError(f"scene {scene.key} has no CRS; vector labels cannot be placed on it")
        if values and self.attribute is not None:
            if self.attribute not in columns:
                raise MarsError(f"{path} has no attribute '{self.attribute}'; it has {', '.join(columns) or 'none'}")
            raw = list(columns[self.attribute])
        else:
            raw = [self.burn_value] * len(geoms)
        out: list[tuple[Any, int]] = []
        reproject = not same_crs(crs, scene.crs)
        for g, r in zip(geoms, raw, strict=True):
            if g is None or g.is_empty:
                continue
            v = self.value_map[r] if (values and self.value_map is not None and r in self.value_map) else r
            if values and self.value_map is not None and r not in self.value_map:
                raise MarsError(f"{path}: attribute value {r!r} is not in value_map {dict(self.value_map)}")
            if values and not 0 <= int(v) <= 254:
                raise MarsError(f"{path}: burn value {v} is outside 0..254 (255 is the ignore value)")
            geo = shapely.geometry.mapping(g)
            if reproject:
                geo = transform_geom(crs, scene.crs, geo)
            out.append((shapely.geometry.shape(geo), int(v) if values else 1))
        return out


class _BoundVector:
    def __init__(self, shapes: list[tuple[Any, int]], cover: list[tuple[Any, int]] | None, transform: Any,
                 all_touched: bool) -> None:
        import shapely

        # Higher values burned last so that they win where polygons overlap.
        self.shapes = sorted(shapes, key=lambda s: s[1])
        self.cover = cover
        self.transform = transform
        self.all_touched = all_touched
        self.tree = shapely.STRtree([g for g, _ in self.shapes]) if self.shapes else None
        self.cover_tree = shapely.STRtree([g for g, _ in cover]) if cover else None

    def _window_box(self, window: Window) -> Any:
        import shapely

        t = window_transform(window, self.transform)
        corners = ((0, 0), (window.width, 0), (0, window.height), (window.width, window.height))
        # explicit affine algebra: no operator deprecations across affine versions
        xs = [t.a * c + t.b * r + t.c for c, r in corners]
        ys = [t.d * c + t.e * r + t.f for c, r in corners]
        return shapely.box(min(xs), min(ys), max(xs), max(ys))

    def _burn(self, shapes: list[tuple[Any, int]], tree: Any, window: Window) -> np.ndarray:
        h, w = int(window.height), int(window.width)
        hits = sorted(tree.query(self._window_box(window))) if tree is not None else []
        if not hits:
            return np.zeros((h, w), dtype=np.uint8)
        return rasterize([shapes[i] for i in hits], out_shape=(h, w), fill=0, dtype="uint8",
                         transform=window_transform(window, self.transform), all_touched=self.all_touched)

    def read(self, window: Window) -> np.ndarray:
        out = self._burn(self.shapes, self.tree, window)
        if self.cover is not None:
            out[self._burn(self.cover, self.cover_tree, window) == 0] = IGNORE
        return out
