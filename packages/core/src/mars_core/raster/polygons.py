"""Vectorising the mask strip by strip, merging the pieces cut by strip seams.

Why strips: vectorising the whole mask at once would need the whole mask in memory. Each
strip is labelled (4-connectivity, the same as ``rasterio.features.shapes``) and vectorised
in *global pixel coordinates*, where every vertex is an integer, so pieces of one object
from two strips share their seam edges exactly and ``unary_union`` joins them without
slivers. Only components that touch the current seam stay in memory; every other polygon is
finished and streamed to the GeoJSON file at once.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import shapes
from scipy import ndimage
from shapely.geometry import mapping, shape


def row_areas_m2(crs: CRS | None, transform: Affine, height: int) -> tuple[np.ndarray | None, list[str]]:
    """Area in m² of one pixel of each row, or None with the reason when the CRS does not allow it.

    Projected CRS: every pixel has the map-plane area |det(transform)| in the CRS's linear unit.
    Geographic CRS (lon/lat, e.g. a global Mars mosaic): a pixel's area shrinks with latitude,
    so it is computed per row on the CRS's own ellipsoid or sphere, never an Earth default.
    """
    if crs is None:
        return None, ["scene has no CRS: area_m2 is null, area_px gives areas in pixels"]
    if crs.is_geographic:
        return _geographic_row_areas(crs, transform, height)
    if not crs.is_projected:
        return None, ["scene CRS is neither projected nor geographic: area_m2 is null, area_px gives areas in pixels"]
    try:
        _, factor = crs.linear_units_factor
    except Exception:  # noqa: BLE001 - rasterio raises CRSError for odd units
        return None, ["scene CRS has no linear unit: area_m2 is null, area_px gives areas in pixels"]
    return np.full(height, abs(transform.determinant) * factor * factor), []


_ELLIPSOID = re.compile(
    r'(?:SPHEROID|ELLIPSOID)\["[^"]*",\s*([-+0-9.eE]+),\s*([-+0-9.eE]+)'
    r'(?:,\s*LENGTHUNIT\["[^"]*",\s*([-+0-9.eE]+)\])?'
)


def ellipsoid_of(crs: CRS) -> tuple[float, float] | None:
    """(semi-major axis in m, first eccentricity squared) from the CRS's WKT; None if absent.

    Read from the WKT rather than a named-ellipsoid table, so Mars spheres and ellipsoids
    (IAU codes, ESRI 'D_Mars_2000' definitions) come out as written in the file.
    """
    match = _ELLIPSOID.search(crs.to_wkt())
    if match is None:
        return None
    a = float(match.group(1)) * (float(match.group(3)) if match.group(3) else 1.0)
    inverse_flattening = float(match.group(2))
    if not a > 0 or inverse_flattening < 0:
        return None
    f = 1.0 / inverse_flattening if inverse_flattening > 0 else 0.0
    return a, f * (2.0 - f)


def _band_area_per_radian(lat: np.ndarray, a: float, e2: float) -> np.ndarray:
    """Area between the equator and latitude ``lat`` (radians) per radian of longitude.

    Closed form of the integral of M(φ)·N(φ)·cos φ dφ on an ellipsoid of revolution; on a
    sphere (e2 = 0) it reduces to a²·sin φ.
    """
    s = np.sin(lat)
    if e2 == 0.0:
        return a * a * s
    e = math.sqrt(e2)
    b2 = a * a * (1.0 - e2)
    return 0.5 * b2 * (s / (1.0 - e2 * s * s) + np.arctanh(e * s) / e)


def _geographic_row_areas(crs: CRS, transform: Affine, height: int) -> tuple[np.ndarray | None, list[str]]:
    def none(why: str) -> tuple[None, list[str]]:
        return None, [f"{why}: area_m2 is null, area_px gives areas in pixels"]

    if transform.b != 0 or transform.d != 0:
        return none("scene is geographic with a rotated grid")
    ellipsoid = ellipsoid_of(crs)
    if ellipsoid is None:
        return none("scene is geographic but its CRS names no ellipsoid or sphere")
    try:
        _, to_radian = crs.units_factor
    except Exception:  # noqa: BLE001 - rasterio raises CRSError for odd units
        return none("scene is geographic but its CRS has no angular unit")
    edges = (transform.f + transform.e * np.arange(height + 1, dtype=np.float64)) * to_radian
    if np.abs(edges).max() > math.pi / 2 + 1e-9:
        return none("scene is geographic but its rows reach beyond the poles")
    band = _band_area_per_radian(np.clip(edges, -math.pi / 2, math.pi / 2), *ellipsoid)
    return abs(transform.a) * to_radian * np.abs(np.diff(band)), []


@dataclass
class _Component:
    pieces: list[dict[str, Any]] = field(default_factory=list)  # GeoJSON-like, pixel coordinates
    prob_sum: float = 0.0
    count: int = 0
    area_m2: float = 0.0


class GeoJSONWriter:
    """Streams features into a FeatureCollection so memory does not grow with their number.

    The source CRS goes in a top-level ``crs`` member as ``{"type": "name", "properties":
    {"name": <WKT>}}`` (the 2008 GeoJSON form, which GDAL/QGIS read via SetFromUserInput),
    because RFC 7946 GeoJSON assumes WGS84 lon/lat, which is wrong on Mars.
    """

    def __init__(self, path: Path, crs: CRS | None, notes: list[str]) -> None:
        self._fh: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.n = 0
        head: dict[str, Any] = {"type": "FeatureCollection"}
        if crs is not None:
            head["crs"] = {"type": "name", "properties": {"name": crs.to_wkt()}}
        head["notes"] = notes
        self._fh.write(json.dumps(head)[:-1] + ', "features": [\n')

    def write(self, geometry: dict[str, Any], properties: dict[str, Any]) -> None:
        """``geometry`` is a GeoJSON geometry mapping in the source CRS."""
        self.n += 1
        feat = {"type": "Feature", "id": self.n, "properties": {"id": self.n, **properties}}
        feat["geometry"] = geometry
        self._fh.write(("" if self.n == 1 else ",\n") + json.dumps(feat))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.write("\n]}\n")
            self._fh.close()


class SeamPolygonizer:
    """Accepts consecutive mask strips top to bottom; emits each finished polygon once."""

    # One whole-strip pass instead of one per component above this many components per strip,
    # or when the components' bounding boxes cover more than this fraction of the strip.
    PER_COMPONENT_MAX = 20_000
    PER_COMPONENT_MAX_COVER = 0.5

    def __init__(
        self,
        height: int,
        transform: Affine,
        row_areas: np.ndarray | None,
        min_area_m2: float,
        emit: Callable[[Any, dict[str, Any]], None],
        min_area_px: int = 0,
    ) -> None:
        self.height = height
        self.row_areas = row_areas  # m² of one pixel in each scene row (from row_areas_m2)
        self.min_area_m2 = min_area_m2
        self.min_area_px = min_area_px
        self.emit = emit
        t = transform
        # row vectors (col, row) @ matrix + offset = (x, y)
        self._matrix = np.array([[t.a, t.d], [t.b, t.e]], dtype=np.float64)
        self._offset = np.array([t.c, t.f], dtype=np.float64)
        self._open: dict[int, _Component] = {}
        self._last_row: np.ndarray | None = None  # global ids along the open seam
        self._next_id = 1
        self._labels: np.ndarray | None = None

    def add_strip(self, row0: int, mask: np.ndarray, prob: np.ndarray) -> None:
        """``mask`` bool [h, W] (True = detection), ``prob`` float32 [h, W], rows from ``row0``."""
        h, w = mask.shape
        if self._labels is None or self._labels.shape[1] != w or self._labels.shape[0] < h:
            self._labels = np.empty((h, w), np.int32)  # reused: allocated once per scene
        labels = self._labels[:h]
        n = ndimage.label(mask, output=labels)
        base = self._next_id - 1
        self._next_id += n
        if n:
            on = labels[mask]  # detections are far fewer than pixels: count only those
            counts = np.bincount(on, minlength=n + 1)
            sums = np.bincount(on, weights=prob[mask], minlength=n + 1)
            if self.row_areas is not None:
                rows = np.nonzero(mask)[0]  # same (row-major) order as labels[mask]
                areas = np.bincount(on, weights=self.row_areas[row0 + rows], minlength=n + 1)
            else:
                areas = np.zeros(n + 1)
            for lab in range(1, n + 1):
                self._open[base + lab] = _Component(prob_sum=float(sums[lab]), count=int(counts[lab]),
                                                    area_m2=float(areas[lab]))
            self._vectorise(labels, n, row0, base)
        first = np.where(labels[0] > 0, labels[0] + base, 0)
        roots: dict[int, int] = {}
        if self._last_row is not None:
            roots = self._merge_across_seam(self._last_row, first)
        last = np.where(labels[-1] > 0, labels[-1] + base, 0)
        if roots:
            last = np.vectorize(lambda g: roots.get(int(g), int(g)), otypes=[np.int64])(last)
        at_bottom = row0 + mask.shape[0] >= self.height
        self._last_row = None if at_bottom else last
        still_open = set() if at_bottom else set(np.unique(last[last > 0]).tolist())
        for gid in [g for g in self._open if g not in still_open]:
            self._finish(self._open.pop(gid))

    def _vectorise(self, labels: np.ndarray, n: int, row0: int, base: int) -> None:
        """Polygons of the strip's components, in global pixel coordinates.

        Why per component: GDAL's polygoniser scans every pixel it is given, and detections
        usually cover a small part of a strip, so tracing each component inside its bounding
        box is cheaper than tracing the whole strip. When the boxes cover much of the strip
        (a noisy mask of countless specks), one call over the strip is cheaper and is used.
        Both give the same integer-vertex polygons (holes included).
        """
        boxes = ndimage.find_objects(labels, max_label=n)
        covered = sum((b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b in boxes if b is not None)
        if n > self.PER_COMPONENT_MAX or covered > self.PER_COMPONENT_MAX_COVER * labels.size:
            to_global = Affine.translation(0, row0)
            for geom, value in shapes(labels, mask=labels > 0, connectivity=4, transform=to_global):
                self._open[base + int(value)].pieces.append(geom)
            return
        for lab, box in enumerate(boxes, start=1):
            if box is None:
                continue
            inside = labels[box] == lab
            to_global = Affine.translation(box[1].start, row0 + box[0].start)
            pieces = self._open[base + lab].pieces
            for geom, _ in shapes(inside.view(np.uint8), mask=inside, connectivity=4, transform=to_global):
                pieces.append(geom)

    def _merge_across_seam(self, above: np.ndarray, below: np.ndarray) -> dict[int, int]:
        """Union components 4-adjacent across the seam; returns id -> surviving id."""
        touching = (above > 0) & (below > 0)
        if not touching.any():
            return {}
        parent: dict[int, int] = {}

        def find(g: int) -> int:
            parent.setdefault(g, g)
            while parent[g] != g:
                parent[g] = parent[parent[g]]
                g = parent[g]
            return g

        pairs = np.unique(np.stack([above[touching], below[touching]], axis=1), axis=0)
        for a, b in pairs.tolist():
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        roots = {g: find(g) for g in list(parent)}
        for g, r in roots.items():
            if g != r:
                src, dst = self._open.pop(g), self._open[r]
                dst.pieces.extend(src.pieces)
                dst.prob_sum += src.prob_sum
                dst.count += src.count
                dst.area_m2 += src.area_m2
        return roots

    def _finish(self, comp: _Component) -> None:
        area_m2 = comp.area_m2 if self.row_areas is not None else None
        if comp.count < self.min_area_px or (area_m2 is not None and area_m2 < self.min_area_m2):
            return
        if len(comp.pieces) == 1:  # the common case: no shapely round trip needed
            geom = comp.pieces[0]
        else:  # pieces cut by seams share integer edges, so the union is exact
            geom = mapping(shapely.unary_union([shape(p) for p in comp.pieces]))
        props = {
            "area_m2": area_m2,
            "area_px": comp.count,
            "mean_prob": comp.prob_sum / comp.count,
        }
        self.emit(self._world(geom), props)

    def _world(self, geom: dict[str, Any]) -> dict[str, Any]:
        """Pixel -> source CRS coordinates for a Polygon or MultiPolygon mapping."""
        m, off = self._matrix, self._offset

        def ring(coords: Any) -> list[list[float]]:
            return (np.asarray(coords, dtype=np.float64) @ m + off).tolist()

        if geom["type"] == "Polygon":
            return {"type": "Polygon", "coordinates": [ring(r) for r in geom["coordinates"]]}
        polys = [[ring(r) for r in poly] for poly in geom["coordinates"]]
        return {"type": geom["type"], "coordinates": polys}

    def finish(self) -> None:
        for comp in self._open.values():
            self._finish(comp)
        self._open.clear()
