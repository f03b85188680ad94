"""One grid check for every pair of rasters: same CRS by meaning, same shape, same transform.

Why "by meaning": the same Mars projection is written with different names by different
tools (the real icefrag triplet names its datum "MARS" in the mask and "unknown" in the
images). Names say nothing about where a pixel is; the ellipsoid, the projection method,
its parameters and the units do. GDAL's own comparison (``CRS.__eq__``, ``OSRIsSame``)
already ignores most names; when it says "different", the WKTs are compared once more with
every name blanked, so no naming difference can refuse a pair. Never resamples: aligning
is the user's call.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from rasterio.crs import CRS

from mars_core.errors import MarsError

HINT = "align the pair first (e.g. gdalwarp onto the same grid); scenes are never resampled silently"
# A WKT1 node's name is its first, quoted, argument: PROJCS["name", GEOGCS["name", DATUM["name", ...
_NAMED_NODE = re.compile(r'\b(PROJCS|GEOGCS|GEOGCRS|PROJCRS|BASEGEOGCRS|DATUM|SPHEROID|ELLIPSOID|PRIMEM|'
                         r'CONVERSION|METHOD)\["[^"]*"')
_AUTHORITY = re.compile(r',?\s*\b(AUTHORITY|ID)\["[^"]*",\s*"?[^\]]*"?\]')


def _anonymous_wkt(crs: CRS) -> str:
    wkt = crs.to_wkt()
    wkt = _NAMED_NODE.sub(lambda m: f'{m.group(1)}[""', wkt)
    return _AUTHORITY.sub("", wkt)


def same_crs(a: CRS | None, b: CRS | None) -> bool:
    """True when ``a`` and ``b`` place pixels identically, whatever their names say."""
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    return _anonymous_wkt(a) == _anonymous_wkt(b)


def _crs_text(crs: CRS | None) -> str:
    if crs is None:
        return "none"
    return crs.to_string() or crs.to_wkt()


def check_same_grid(path_a: Path | str, a: Any, path_b: Path | str, b: Any, tolerance_px: float) -> None:
    """Raise a one-line :class:`MarsError` unless ``b`` lies on ``a``'s pixel grid.

    ``a`` and ``b`` are open rasterio datasets (anything with ``crs``, ``shape``,
    ``width``, ``height`` and ``transform``). The transforms may differ by at most
    ``tolerance_px`` of a pixel at every corner of the scene: sub-pixel noise in the
    geotransform written by different tools is accepted, a real shift is not.
    """
    if not same_crs(a.crs, b.crs):
        raise MarsError(f"{path_a} and {path_b} are not on one grid: different CRSs "
                        f"({_crs_text(a.crs)!r} vs {_crs_text(b.crs)!r}); {HINT}")
    if tuple(a.shape) != tuple(b.shape):
        raise MarsError(f"{path_a} and {path_b} are not on one grid: different shapes "
                        f"({tuple(a.shape)} vs {tuple(b.shape)}); {HINT}")
    ta, inv_b = a.transform, ~b.transform
    worst = 0.0
    for col, row in [(0, 0), (a.width, 0), (0, a.height), (a.width, a.height)]:
        # explicit affine algebra: works with every affine version, no operator deprecations
        x, y = ta.a * col + ta.b * row + ta.c, ta.d * col + ta.e * row + ta.f
        cb, rb = inv_b.a * x + inv_b.b * y + inv_b.c, inv_b.d * x + inv_b.e * y + inv_b.f
        worst = max(worst, abs(cb - col), abs(rb - row))
    if not worst <= tolerance_px:
        raise MarsError(f"{path_a} and {path_b} are not on one grid: different geotransforms (grids differ by up "
                        f"to {worst:.3g} px, tolerance {tolerance_px} px); {HINT}")
