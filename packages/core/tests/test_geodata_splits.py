"""Spatial splits: no leakage between splits, evaluation tiles scoring each pixel once, folds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mars_core.errors import MarsError
from mars_core.geodata import block_split, fold_split, scene_split, scene_windows, spatial_folds

SPLITS = ("train", "val", "test")


def _coverage(windows, shape, owned=True):
    """How many windows own (or merely see) each pixel."""
    count = np.zeros(shape, dtype=np.int64)
    for w in windows:
        if owned:
            r0, r1, c0, c1 = w.clipped_own
        else:
            r0, r1, c0, c1 = w.row, min(w.row + w.size, shape[0]), w.col, min(w.col + w.size, shape[1])
        count[r0:r1, c0:c1] += 1
    return count


@pytest.mark.parametrize(("h", "w", "tile", "seed"), [(200, 230, 16, 0), (131, 97, 12, 3), (256, 256, 32, 5)])
def test_block_split_has_no_leakage_and_scores_val_test_once(h, w, tile, seed):
    split = block_split(h, w, tile, (0.6, 0.2, 0.2), block_tiles=2, gap_tiles=1, seed=seed)
    pmap = split.pixel_map()
    assert all((pmap == i).any() for i in range(3)), "every split gets pixels"
    train_tiles = split.windows("train", overlap=0.5)
    seen_by_train = _coverage(train_tiles, (h, w), owned=False) > 0
    assert not (seen_by_train & (pmap >= 1)).any(), "a training tile reads a val/test pixel"
    for s in (1, 2):
        # no pixel of val/test within one tile (Chebyshev) of a train pixel or of another split
        near = ndimage.binary_dilation(pmap == s, structure=np.ones((2 * tile - 1, 2 * tile - 1), bool))
        others = (pmap >= 0) & (pmap != s)
        assert not (near & others).any()
        wins = split.windows(SPLITS[s])
        owned = _coverage(wins, (h, w))
        assert np.array_equal(owned, (pmap == s).astype(np.int64)), "each val/test pixel scored exactly once"
        pos = [(x.row, x.col) for x in wins]
        assert len(pos) == len(set(pos))
        seen = _coverage(wins, (h, w), owned=False)
        assert seen.max() <= 4  # only the shifted last tiles of edge cells overlap (in what they see)
        assert all(x.row + x.size <= h and x.col + x.size <= w for x in wins)
    assert (_coverage(train_tiles, (h, w), owned=False) > 1).any(), "training tiles may overlap"
    again = block_split(h, w, tile, (0.6, 0.2, 0.2), block_tiles=2, gap_tiles=1, seed=seed)
    assert np.array_equal(again.cells, split.cells)


def test_wider_gap_keeps_two_tiles_between_splits():
    split = block_split(256, 256, 16, (0.5, 0.25, 0.25), block_tiles=3, gap_tiles=2, seed=1)
    pmap = split.pixel_map()
    dist = ndimage.distance_transform_cdt(pmap != 0, metric="chessboard")
    assert dist[pmap >= 1].min() > 2 * 16


def test_whole_scene_tiles_never_overlap_in_what_they_score():
    wins = scene_windows(0, (130, 300), 64)
    assert np.array_equal(_coverage(wins, (130, 300)), np.ones((130, 300), np.int64))
    assert len(wins) == 3 * 5


def test_folds_partition_blocks_and_hold_out_each_with_a_gap():
    folds = spatial_folds(192, 192, 16, k=4, block_tiles=3, seed=2)
    assert folds.shape == (4, 4) and sorted(np.bincount(folds.ravel()).tolist()) == [4, 4, 4, 4]
    held = np.zeros((192, 192), np.int64)
    for i in range(4):
        split = fold_split(192, 192, 16, folds, i, block_tiles=3, gap_tiles=1)
        pmap = split.pixel_map()
        held += pmap == 1
        near = ndimage.binary_dilation(pmap == 1, structure=np.ones((31, 31), bool))
        assert not (near & (pmap == 0)).any()
        assert not (pmap == 2).any()
    assert held.max() == 1 and held.sum() == 192 * 192, "each pixel is held out in exactly one fold"
    with pytest.raises(MarsError, match="k must be between 2"):
        spatial_folds(192, 192, 16, k=17, block_tiles=3)


def test_weighted_folds_deal_only_occupied_blocks_and_balance_their_content():
    # A sparse 12 x 12 grid of 1-px cells, blocks of 3 x 3: content in 6 of the 16 blocks.
    weights = np.zeros((12, 12))
    for (r, c), n in {(0, 0): 9, (0, 4): 5, (4, 0): 4, (4, 9): 3, (9, 9): 2, (9, 3): 1}.items():
        weights[r, c] = n
    folds = spatial_folds(12, 12, 1, k=3, block_tiles=3, seed=0, weights=weights)
    occupied = {(r // 3, c // 3) for r, c in zip(*np.nonzero(weights), strict=True)}
    for br in range(4):
        for bc in range(4):
            assert (folds[br, bc] == 3) == ((br, bc) not in occupied), "empty blocks get k, never a fold"
    per_fold = np.bincount(folds[folds < 3].ravel(), minlength=3)
    load = [weights.reshape(4, 3, 4, 3).sum(axis=(1, 3))[folds == f].sum() for f in range(3)]
    assert per_fold.min() >= 1 and sorted(load) == [7, 8, 9], "heaviest first, each to the lightest fold"
    with pytest.raises(MarsError, match="blocks with weight"):
        spatial_folds(12, 12, 1, k=7, block_tiles=3, weights=weights)
    with pytest.raises(MarsError, match="weights have shape"):
        spatial_folds(12, 12, 1, k=3, block_tiles=3, weights=weights[:6])


def test_scene_split_keeps_groups_together_and_refuses_unknown_names():
    keys = [f"site{s}_{d}" for s in range(6) for d in range(3)]
    parts = scene_split(keys, (0.6, 0.2, 0.2), seed=4, group_regex=r"(site\d)_")
    sites = {name: {k.split("_")[0] for k in ks} for name, ks in parts.items()}
    assert not (sites["train"] & sites["val"]) and not (sites["val"] & sites["test"])
    assert sum(len(v) for v in parts.values()) == 18 and all(parts.values())
    with pytest.raises(MarsError, match="nope"):
        scene_split(keys, {"train": ["nope"]})


def test_block_split_refuses_a_scene_smaller_than_a_tile():
    with pytest.raises(MarsError, match="smaller than one tile"):
        block_split(10, 100, 16, (0.6, 0.2, 0.2))
