"""Spatial splits without leakage: by scene (or group of scenes), or by blocks of one scene.

Block split. The scene is cut into cells of one tile (the last row/column of cells takes
the remainder pixels), cells are grouped into square blocks of ``block_tiles`` x
``block_tiles`` cells, and blocks are assigned to splits deterministically from ``seed``
and the fractions. Then a gap: a cell within ``gap_tiles`` cells (8-neighbourhood) of a
cell of a *later* split (train < val < test) leaves its split and belongs to none. Any
two cells of different splits are then at least ``gap_tiles`` whole cells apart, i.e. at
least ``gap_tiles * tile`` pixels: a training tile never sees a validation or test pixel.
The train split, the largest, gives up its border; val gives up its border with test.

Folds: the same blocks dealt into ``k`` folds; fold ``i`` as validation (or test) and
the others as training, with the same gap rule (:func:`fold_split`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mars_core.errors import MarsError
from mars_core.geodata.windows import TileWindow, check_tile, region_windows

SPLITS = ("train", "val", "test")
GAP = -1


def _fractions(fractions: Sequence[float]) -> list[float]:
    f = [float(x) for x in fractions]
    if len(f) != 3 or any(x < 0 for x in f) or sum(f) <= 0:
        raise MarsError(f"split fractions must be three non-negative numbers (train, val, test), got {list(fractions)}")
    return [x / sum(f) for x in f]


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """How many of ``n`` items go to train/val/test; every requested split gets one when n >= 3."""
    f = _fractions(fractions)
    n_val, n_test = round(n * f[1]), round(n * f[2])
    if n >= 3:
        n_val = max(n_val, 1 if f[1] > 0 else 0)
        n_test = max(n_test, 1 if f[2] > 0 else 0)
    n_train = max(0, n - n_val - n_test)
    return [n_train, n_val, n - n_train - n_val]


def _hash_order(names: Sequence[str], seed: int) -> list[str]:
    """Deterministic order independent of file-system order and of Python's hash seed."""
    return sorted(names, key=lambda g: hashlib.sha256(f"{seed}:{g}".encode()).hexdigest())


def scene_split(keys: Sequence[str], split: Mapping[str, Sequence[str]] | Sequence[float] = (0.8, 0.1, 0.1),
                seed: int = 0, group_regex: str | None = None) -> dict[str, list[str]]:
    """Scene keys per split: explicit (``{"train": [...], ...}``) or by fractions of groups.

    Groups (``group_regex``, first group or whole match of each key; default the key) stay
    in one split, so two scenes of one site or one region never straddle train and test.
    """
    if isinstance(split, Mapping):
        out: dict[str, list[str]] = {}
        seen: set[str] = set()
        for name, names in split.items():
            if name not in SPLITS:
                raise MarsError(f"split '{name}' is unknown; allowed: {', '.join(SPLITS)}")
            for k in names:
                if k not in keys:
                    raise MarsError(f"split '{name}' names scene '{k}' which does not exist; scenes: {', '.join(keys)}")
                if k in seen:
                    raise MarsError(f"scene '{k}' is in more than one split")
                seen.add(k)
            out[name] = list(names)
        return out
    groups: dict[str, list[str]] = {}
    for k in keys:
        g = k
        if group_regex:
            m = re.search(group_regex, k)
            g = (m.group(1) if m.groups() else m.group(0)) if m else k
        groups.setdefault(g, []).append(k)
    order = _hash_order(list(groups), seed)
    n_train, n_val, _ = _counts(len(order), split)
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return {name: [k for g in gs for k in groups[g]] for name, gs in parts.items()}


@dataclass(frozen=True)
class BlockLayout:
    """Cells of one tile and blocks of ``block_tiles`` x ``block_tiles`` cells over a scene."""

    height: int
    width: int
    tile: int
    block_tiles: int

    def __post_init__(self) -> None:
        check_tile(self.tile)
        if self.block_tiles < 1:
            raise MarsError(f"block_tiles must be >= 1, got {self.block_tiles}")
        if self.height < self.tile or self.width < self.tile:
            raise MarsError(f"a scene of {self.height}x{self.width} px is smaller than one tile of {self.tile} px; "
                            "a block split needs whole tiles")

    @property
    def cells(self) -> tuple[int, int]:
        return self.height // self.tile, self.width // self.tile

    @property
    def blocks(self) -> tuple[int, int]:
        nr, nc = self.cells
        return -(-nr // self.block_tiles), -(-nc // self.block_tiles)

    def cell_edges(self, axis: int) -> np.ndarray:
        """Pixel edges of the cells along ``axis`` (0 rows, 1 cols); the last cell takes the rest."""
        n, length = self.cells[axis], (self.height, self.width)[axis]
        edges = np.arange(n + 1) * self.tile
        edges[-1] = length
        return edges

    def block_of_cells(self) -> np.ndarray:
        """[rows, cols] of cells -> block index (row-major over blocks)."""
        nr, nc = self.cells
        br = np.arange(nr) // self.block_tiles
        bc = np.arange(nc) // self.block_tiles
        return br[:, None] * self.blocks[1] + bc[None, :]


def _apply_gap(cells: np.ndarray, gap_tiles: int) -> np.ndarray:
    """Cells within ``gap_tiles`` (Chebyshev, in cells) of a cell of a later split become GAP."""
    if gap_tiles < 0:
        raise MarsError(f"gap_tiles must be >= 0, got {gap_tiles}")
    out = cells.copy()
    nr, nc = cells.shape
    g = gap_tiles
    for s in range(int(cells.max(initial=0)) + 1):
        later = cells > s
        if not later.any():
            continue
        # dilate the later-split cells by g cells (square structuring element)
        pad = np.pad(later, g)
        near = np.zeros_like(later)
        for dr in range(2 * g + 1):
            for dc in range(2 * g + 1):
                near |= pad[dr : dr + nr, dc : dc + nc]
        out[(cells == s) & near] = GAP
    return out


@dataclass(frozen=True)
class BlockSplit:
    """Cells of one scene assigned to splits (``names[i]`` for value i, GAP = -1 = none)."""

    layout: BlockLayout
    cells: np.ndarray
    names: tuple[str, ...] = SPLITS

    def pixel_map(self) -> np.ndarray:
        """[H, W] int8 split index per pixel (-1 in gaps); for checks and small scenes."""
        re_, ce = self.layout.cell_edges(0), self.layout.cell_edges(1)
        rows = np.repeat(np.arange(len(re_) - 1), np.diff(re_))
        cols = np.repeat(np.arange(len(ce) - 1), np.diff(ce))
        return self.cells[rows[:, None], cols[None, :]].astype(np.int8)

    def windows(self, split: str, scene: int = 0, overlap: float = 0.0) -> list[TileWindow]:
        """Tiles of ``split``: ``overlap == 0`` (always for val/test) lays non-overlapping
        tiles, one per cell, owning each pixel of the split exactly once; ``overlap > 0``
        (training) adds tiles at that overlap wherever their whole footprint is in the split."""
        if split not in self.names:
            raise MarsError(f"split '{split}' is unknown; allowed: {', '.join(self.names)}")
        s = self.names.index(split)
        lay = self.layout
        re_, ce = lay.cell_edges(0), lay.cell_edges(1)
        shape = (lay.height, lay.width)
        out: list[TileWindow] = []
        for i, j in zip(*np.nonzero(self.cells == s), strict=True):
            out += region_windows(scene, (int(re_[i]), int(re_[i + 1]), int(ce[j]), int(ce[j + 1])), shape, lay.tile)
        if overlap > 0:
            # Cells are at least one tile, so every cell tile lies inside the split: for
            # training it owns its whole footprint. Then the overlapping tiles in between.
            t = lay.tile
            out = [TileWindow(scene, w.row, w.col, t, (w.row, w.row + t, w.col, w.col + t)) for w in out]
            seen = {(w.row, w.col) for w in out}
            inside = (self.pixel_map() == s).astype(np.int64)
            integral = np.pad(inside.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
            for w in region_windows(scene, (0, lay.height, 0, lay.width), shape, t, overlap):
                r, c = w.row, w.col
                full = integral[r + t, c + t] - integral[r, c + t] - integral[r + t, c] + integral[r, c]
                if full == t * t and (r, c) not in seen:
                    seen.add((r, c))
                    out.append(TileWindow(scene, r, c, t, (r, r + t, c, c + t)))
        return out


def block_split(height: int, width: int, tile: int, fractions: Sequence[float] = (0.7, 0.15, 0.15),
                block_tiles: int = 4, gap_tiles: int = 1, seed: int = 0) -> BlockSplit:
    """Blocks of one scene dealt to train/val/test by ``fractions`` (see the module docstring)."""
    layout = BlockLayout(height, width, tile, block_tiles)
    n_blocks = layout.blocks[0] * layout.blocks[1]
    order = np.random.default_rng(seed).permutation(n_blocks)
    counts = _counts(n_blocks, fractions)
    block_split_of = np.empty(n_blocks, dtype=np.int64)
    block_split_of[order[: counts[0]]] = 0
    block_split_of[order[counts[0] : counts[0] + counts[1]]] = 1
    block_split_of[order[counts[0] + counts[1] :]] = 2
    cells = _apply_gap(block_split_of[layout.block_of_cells()], gap_tiles)
    return BlockSplit(layout, cells)


def spatial_folds(height: int, width: int, tile: int, k: int, block_tiles: int = 4, seed: int = 0,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """Fold index (0..k-1) of every block, [block rows, block cols]: blocks shuffled by
    ``seed`` and dealt round-robin, so folds differ in size by at most one block.

    ``weights`` ([cell rows, cell cols], e.g. samples or valid pixels per cell) balances the
    folds by content instead: on a sparse grid (patches scattered over a large bounding box)
    round-robin over every block leaves folds of very different size. Only blocks with
    weight are dealt, heaviest first (ties in ``seed`` order), each to the fold lightest so
    far; an empty block gets ``k``, an id never held out, so it never puts a gap into the
    training cells.
    """
    layout = BlockLayout(height, width, tile, block_tiles)
    n = layout.blocks[0] * layout.blocks[1]
    if weights is None:
        if not 2 <= k <= n:
            raise MarsError(f"k must be between 2 and the number of blocks ({n}), got {k}")
        folds = np.empty(n, dtype=np.int64)
        folds[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
        return folds.reshape(layout.blocks)
    w = np.asarray(weights)
    if w.shape != layout.cells:
        raise MarsError(f"weights have shape {w.shape} but the layout has {layout.cells} cells")
    per_block = np.bincount(layout.block_of_cells().ravel(), weights=w.ravel().astype(np.float64), minlength=n)
    occupied = np.nonzero(per_block > 0)[0]
    if not 2 <= k <= len(occupied):
        raise MarsError(f"k must be between 2 and the number of blocks with weight ({len(occupied)}), got {k}")
    order = np.random.default_rng(seed).permutation(len(occupied))
    order = order[np.argsort(-per_block[occupied][order], kind="stable")]  # heaviest first, seeded ties
    folds = np.full(n, k, dtype=np.int64)
    load = np.zeros(k)
    for j in order:
        f = int(np.argmin(load))
        folds[occupied[j]] = f
        load[f] += per_block[occupied[j]]
    return folds.reshape(layout.blocks)


def fold_split(height: int, width: int, tile: int, folds: np.ndarray, fold: int, block_tiles: int = 4,
               gap_tiles: int = 1, held_out: str = "val") -> BlockSplit:
    """Fold ``fold`` as ``held_out`` ("val" or "test"), every other fold as train, with the gap."""
    if held_out not in ("val", "test"):
        raise MarsError(f"held_out must be 'val' or 'test', got {held_out!r}")
    layout = BlockLayout(height, width, tile, block_tiles)
    if folds.shape != layout.blocks:
        raise MarsError(f"folds have shape {folds.shape} but the layout has {layout.blocks} blocks")
    if not 0 <= fold <= int(folds.max()):
        raise MarsError(f"fold must be between 0 and {int(folds.max())}, got {fold}")
    per_block = np.where(folds.ravel() == fold, SPLITS.index(held_out), 0)
    cells = _apply_gap(per_block[layout.block_of_cells()], gap_tiles)
    return BlockSplit(layout, cells)
