"""Spatial cross-validation over the MMLS patch grid (the ``R_C`` of the file names).

Why: the 31 validation patches come from one strip of terrain, and choosing a recipe on them
overestimated a new region by 0.15 mIoU (issue 12). Here every patch of the pooled
partitions is a cell of the grid (row R, column C); cells are grouped into square blocks of
``block`` x ``block`` patches, whole blocks are dealt to ``folds`` folds, and fold ``fold``
is held out as ``test`` while the other folds train, minus a ``gap``: a training patch within
``gap`` cells (8-neighbourhood, Chebyshev distance) of a held-out patch is used by neither
side, so no training patch touches the terrain it is judged on.

The blocks, their dealing to folds and the gap are mars-core's
(:func:`mars_core.geodata.spatial_folds` and :func:`~mars_core.geodata.fold_split` on a grid
whose "pixels" are patches, tile 1). The folds are balanced by patch count (``weights``): on
the sparse MMLS grid (306 patches in a 30 x 70 box) round-robin over every block of the
bounding box would leave folds of very different size, so only occupied blocks are dealt,
largest first, each to the fold with the fewest patches so far (ties in ``seed`` order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mars_core.errors import MarsError
from mars_core.geodata.splits import GAP, SPLITS, BlockLayout, fold_split, spatial_folds

_KEYS = ("folds", "fold", "gap", "block", "seed")


def _whole(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise MarsError(f"data.cv.{name} must be a whole number >= {low}, got {value!r}")
    return value


@dataclass(frozen=True)
class CVSpec:
    """Which fold of which spatial K-fold split: ``data.cv`` of the ``mmls`` data source."""

    folds: int = 5
    fold: int = 0
    gap: int = 1
    block: int = 6
    seed: int = 0

    def __post_init__(self) -> None:
        _whole("folds", self.folds, 2)
        _whole("fold", self.fold, 0)
        _whole("gap", self.gap, 0)
        _whole("block", self.block, 1)
        _whole("seed", self.seed, 0)
        if self.fold >= self.folds:
            raise MarsError(f"data.cv.fold must be between 0 and {self.folds - 1} (data.cv.folds={self.folds}), "
                            f"got {self.fold}")

    @classmethod
    def parse(cls, value: Mapping[str, Any] | None) -> CVSpec | None:
        """``None`` (no CV) or a mapping with keys among folds, fold, gap, block, seed."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise MarsError(f"data.cv must be a mapping with keys {', '.join(_KEYS)}, got {value!r}")
        unknown = sorted(set(value) - set(_KEYS))
        if unknown:
            raise MarsError(f"data.cv: unknown key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(_KEYS)}")
        return cls(**dict(value))


def _grid(positions: Sequence[tuple[int, int] | None]) -> np.ndarray:
    if not positions:
        raise MarsError("spatial cross-validation needs at least one patch")
    missing = [i for i, p in enumerate(positions) if p is None]
    if missing:
        raise MarsError(f"spatial cross-validation needs the grid position R_C of every patch; "
                        f"{len(missing)} patch(es) have none (names not ending in patch_R_C)")
    pos = np.asarray(positions, dtype=np.int64)
    if len({tuple(p) for p in pos.tolist()}) != len(pos):
        raise MarsError("two patches at one grid position R_C in the pooled partitions; "
                        "they cannot be pooled for a spatial cross-validation")
    return pos


def _layout(pos: np.ndarray, block: int) -> BlockLayout:
    height, width = int(pos[:, 0].max()) + 1, int(pos[:, 1].max()) + 1
    return BlockLayout(height, width, 1, block)


def block_folds(positions: Sequence[tuple[int, int] | None], folds: int, block: int = 6, seed: int = 0) -> np.ndarray:
    """Fold id of every block of the grid, [block rows, block cols]; empty blocks get ``folds``
    (an id never held out, so an empty block never pushes a gap into the training patches)."""
    pos = _grid(positions)
    layout = _layout(pos, block)
    occupancy = np.zeros(layout.cells, dtype=np.int64)
    occupancy[pos[:, 0], pos[:, 1]] = 1
    filled = len(np.unique(layout.block_of_cells()[pos[:, 0], pos[:, 1]]))
    if folds > filled:
        raise MarsError(f"data.cv.folds={folds} but the patches fill only {filled} block(s) of "
                        f"{block}x{block} patches; use fewer folds or a smaller data.cv.block")
    return spatial_folds(layout.height, layout.width, 1, folds, block_tiles=block, seed=seed, weights=occupancy)


def patch_roles(positions: Sequence[tuple[int, int] | None], spec: CVSpec) -> np.ndarray:
    """Per patch: 0 train, 2 test (the held-out fold), -1 gap (in neither)."""
    pos = _grid(positions)
    folds = block_folds(positions, spec.folds, spec.block, spec.seed)
    layout = _layout(pos, spec.block)
    split = fold_split(layout.height, layout.width, 1, folds, spec.fold, block_tiles=spec.block,
                       gap_tiles=spec.gap, held_out="test")
    return split.cells[pos[:, 0], pos[:, 1]]


def fold_indices(positions: Sequence[tuple[int, int] | None], spec: CVSpec) -> dict[str, list[int]]:
    """Patch indices of ``train``, ``test`` and ``gap`` for fold ``spec.fold``."""
    roles = patch_roles(positions, spec)
    out = {"train": np.nonzero(roles == SPLITS.index("train"))[0].tolist(),
           "test": np.nonzero(roles == SPLITS.index("test"))[0].tolist(),
           "gap": np.nonzero(roles == GAP)[0].tolist()}
    if not out["train"]:
        raise MarsError(f"fold {spec.fold}: no training patch is left after the gap of {spec.gap}; "
                        "use a smaller data.cv.gap or more folds")
    return out
