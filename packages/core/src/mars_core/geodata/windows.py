"""Tile windows of scenes: overlapping for training, non-overlapping for evaluation.

A :class:`TileWindow` is a square window of one scene plus the rectangle of scene pixels
it *owns*: its mask is IGNORE outside that rectangle. Evaluation tiles are laid with
stride = tile by :func:`mars_core.raster.tiling.axis_tiles`; where the last tile of a row
is shifted back to end at the region border, ownership of the overlap is split between the
two tiles, so every pixel of an evaluated region is scored exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rasterio.windows import Window

from mars_core.errors import MarsError
from mars_core.raster.tiling import axis_tiles


@dataclass(frozen=True)
class TileWindow:
    """Tile of ``size`` px at (``row``, ``col``) of scene ``scene``; it owns scene pixels
    rows ``own[0]:own[1]``, cols ``own[2]:own[3]`` (the rest of its mask is IGNORE)."""

    scene: int
    row: int
    col: int
    size: int
    own: tuple[int, int, int, int]

    @property
    def window(self) -> Window:
        return Window(self.col, self.row, self.size, self.size)

    @property
    def n_owned(self) -> int:
        r0, r1, c0, c1 = self.clipped_own
        return max(0, r1 - r0) * max(0, c1 - c0)

    @property
    def clipped_own(self) -> tuple[int, int, int, int]:
        r0, r1, c0, c1 = self.own
        return (max(r0, self.row), min(r1, self.row + self.size), max(c0, self.col), min(c1, self.col + self.size))


def _axis(lo: int, hi: int, length: int, tile: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, own_lo, own_hi) along one axis for the region [lo, hi) of a scene side ``length``."""
    span = hi - lo
    if span <= 0:
        return []
    if span <= tile:
        # The tile may stick out of the region (never out of the scene unless it is smaller
        # than a tile): it owns only the region.
        start = max(0, min(lo, length - tile))
        return [(start, lo, hi)]
    ax = axis_tiles(span, tile, stride)
    return [(lo + s, lo + a, lo + b) for s, (a, b) in zip(ax.starts, ax.own, strict=True)]


def region_windows(scene: int, region: tuple[int, int, int, int], shape: tuple[int, int], tile: int,
                   overlap: float = 0.0) -> list[TileWindow]:
    """Tiles over the rectangle ``region`` = (r0, r1, c0, c1) of a scene of ``shape``.

    ``overlap == 0``: evaluation layout, every region pixel owned by exactly one tile.
    ``overlap > 0``: training layout; tiles overlap by that fraction and each owns its whole
    footprint inside the region (a pixel may be seen by several training tiles).
    """
    if not 0 <= overlap < 1:
        raise MarsError(f"overlap must be in [0, 1), got {overlap}")
    stride = max(1, int(round(tile * (1 - overlap))))
    r0, r1, c0, c1 = region
    h, w = shape
    rows = _axis(r0, r1, h, tile, stride)
    cols = _axis(c0, c1, w, tile, stride)
    out = []
    for rs, ra, rb in rows:
        for cs, ca, cb in cols:
            if overlap == 0:
                own = (ra, rb, ca, cb)
            else:
                own = (max(r0, rs), min(r1, rs + tile), max(c0, cs), min(c1, cs + tile))
            out.append(TileWindow(scene, rs, cs, tile, own))
    return out


def scene_windows(scene: int, shape: tuple[int, int], tile: int, overlap: float = 0.0) -> list[TileWindow]:
    """Tiles over a whole scene (see :func:`region_windows`)."""
    return region_windows(scene, (0, shape[0], 0, shape[1]), shape, tile, overlap)


def check_tile(tile: int) -> int:
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1:
        raise MarsError(f"tile must be a positive whole number of pixels, got {tile!r}")
    return tile


def owned_count(windows: Iterable[TileWindow]) -> int:
    """Pixels scored by these windows (for reports and tests)."""
    return sum(w.n_owned for w in windows)
