"""Tile layout for centre-crop stitching.

Why centre-crop: a convolutional model sees less context near a tile's edge, so its output
there differs from what it would give with the whole scene. Taking every output pixel from
exactly one tile, from the part of it at least ``margin`` pixels away from the tile's edge
(except at the scene border, where no more context exists), removes seam artefacts whenever
``margin`` is at least the model's receptive radius, and needs no accumulation buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

from mars_core.errors import MarsError


@dataclass(frozen=True)
class AxisTiles:
    """Tiles along one axis: where each starts, and the half-open range of pixels it owns."""

    starts: tuple[int, ...]
    own: tuple[tuple[int, int], ...]


def axis_tiles(length: int, tile: int, stride: int) -> AxisTiles:
    """Place tiles of ``tile`` px every ``stride`` px over ``length`` px.

    The last tile is shifted back so that it ends exactly at the scene border (no padding
    unless the scene is smaller than one tile). Ownership switches from one tile to the
    next in the middle of their overlap, so each tile owns the pixels farthest from its
    edges; the first and last tiles also own the scene borders.
    """
    if length <= tile:
        return AxisTiles(starts=(0,), own=((0, length),))
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    bounds = [0]
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        bounds.append((b + a + tile) // 2)
    bounds.append(length)
    own = tuple((bounds[i], bounds[i + 1]) for i in range(len(starts)))
    return AxisTiles(starts=tuple(starts), own=own)


@dataclass(frozen=True)
class TileGrid:
    """Row and column tiling of a scene; tiles are visited row by row (row-major)."""

    height: int
    width: int
    tile: int
    overlap_px: int
    rows: AxisTiles
    cols: AxisTiles

    @property
    def margin(self) -> int:
        """Pixels at a tile edge (inside the scene) that are never used: the context guarantee."""
        return self.overlap_px // 2

    @property
    def n_tiles(self) -> int:
        return len(self.rows.starts) * len(self.cols.starts)


def make_grid(height: int, width: int, tile: int, overlap: float) -> TileGrid:
    """Validate the tiling parameters (user input, hence MarsError) and lay out the tiles."""
    if not isinstance(tile, int) or isinstance(tile, bool) or tile < 1:
        raise MarsError(f"tile must be a positive integer number of pixels, got {tile!r}")
    if not 0.0 <= overlap < 1.0:
        raise MarsError(f"overlap must be a fraction with 0 <= overlap < 1, got {overlap!r}")
    overlap_px = int(round(tile * overlap))
    stride = tile - overlap_px
    if stride < 1 or 2 * (overlap_px // 2) >= tile:
        raise MarsError(
            f"tile {tile} px is too small for overlap {overlap} ({overlap_px} px shared, margin "
            f"{overlap_px // 2} px on each side): use a larger tile or a smaller overlap"
        )
    return TileGrid(
        height=height,
        width=width,
        tile=tile,
        overlap_px=overlap_px,
        rows=axis_tiles(height, tile, stride),
        cols=axis_tiles(width, tile, stride),
    )
