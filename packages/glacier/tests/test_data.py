"""Data source glacier-scenes on crops of the real scene: pairing, bands, splits, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from glacier_testutil import NIR, RGB, crop, empty_outlines, far_away_outlines, stack_of

from mars_core.errors import MarsError
from mars_core.masking import IGNORE
from mars_glacier.scenes import BANDS, GlacierScenes


def test_pair_is_matched_by_name_and_bands_are_red_green_blue_nir(scene_dir: Path) -> None:
    src = GlacierScenes(str(scene_dir))
    assert src.keys == ["everest_2000_x"]
    assert src.scenes[0].bands == BANDS
    c = src.input_contract()
    assert c.bands == BANDS and c.tile_size == 128 and c.normalisation.method == "robust"
    assert c.normalisation.saturated == [255]
    item = src.dataset("all")[0]
    assert item["image"].shape == (4, 128, 128)
    # band 4 is the B4 file (NIR), not a copy of red
    import rasterio
    from rasterio.windows import Window

    with rasterio.open(next(scene_dir.glob("*_B4_*"))) as ds:
        nir = ds.read(1, window=Window(0, 0, 128, 128)).astype(float)
    img = item["image"].numpy()
    assert np.corrcoef(img[3].ravel(), nir.ravel())[0, 1] > 0.99


def test_stacked_scene_gives_the_same_tiles_as_the_pair(scene_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "stacked"
    other.mkdir()
    stack_of(scene_dir, other / "everest_2000.tif")
    shutil.copy(scene_dir / "outlines.geojson", other)
    a, b = GlacierScenes(str(scene_dir)).dataset("all"), GlacierScenes(str(other)).dataset("all")
    assert len(a) == len(b)
    assert np.allclose(a[1]["image"].numpy(), b[1]["image"].numpy())
    assert np.array_equal(a[1]["mask"].numpy(), b[1]["mask"].numpy())


def test_saturation_is_reported_and_kept(scene_dir: Path) -> None:
    src = GlacierScenes(str(scene_dir))
    sat = src.saturation()
    assert set(sat) == set(BANDS) and all(0 <= v <= 1 for v in sat.values())
    assert sat["red"] > 0.05  # the real scene is heavily saturated on snow and ice
    # saturated pixels are kept: they count in the mask (not IGNORE)
    mask = src.dataset("all")[0]["mask"].numpy()
    assert (mask != IGNORE).all()


def test_all_split_scores_every_pixel_once(scene_dir: Path) -> None:
    ds = GlacierScenes(str(scene_dir)).dataset("all")
    counted = sum(int((ds.labels_of(i) != IGNORE).sum()) for i in range(len(ds)))
    assert counted == 256 * 384


def test_block_folds_share_no_pixel_and_keep_a_gap() -> None:
    src = GlacierScenes(None, folds=3, fold=0, fractions=[1, 0, 0])
    from scipy import ndimage

    pm = src._blocks[0].pixel_map()
    assert (pm == 0).any() and (pm == 1).any()
    # Chebyshev distance from every train pixel to the nearest val pixel is more than one tile
    d = ndimage.distance_transform_cdt(pm != 1, metric="chessboard")
    assert d[pm == 0].min() > 128


def test_labels_are_the_outlines(scene_dir: Path) -> None:
    ds = GlacierScenes(str(scene_dir)).dataset("all")
    share = np.mean([float((ds.labels_of(i) == 1).mean()) for i in range(len(ds))])
    assert 0.2 < share < 0.8  # real outlines: neither empty nor everywhere


def test_nir_on_another_grid_is_refused(tmp_path: Path) -> None:
    crop(RGB, tmp_path / "s_RGB_x.tif", (0, 128), (0, 128))
    crop(NIR, tmp_path / "s_B4_x.tif", (0, 128), (0, 128), shift_px=3)
    shutil.copy(RGB.with_name("everest_sample_rgi60_outlines.geojson"), tmp_path)
    with pytest.raises(MarsError, match="grid|transform"):
        GlacierScenes(str(tmp_path))


def test_wrong_band_count_is_refused(tmp_path: Path) -> None:
    crop(RGB, tmp_path / "scene.tif", (0, 128), (0, 128))  # 3 bands, no _RGB_ in the name: a "stack"
    shutil.copy(RGB.with_name("everest_sample_rgi60_outlines.geojson"), tmp_path)
    with pytest.raises(MarsError, match="3 band"):
        GlacierScenes(str(tmp_path))


def test_outlines_that_miss_the_scene_or_are_empty_are_refused(scene_dir: Path) -> None:
    (scene_dir / "outlines.geojson").unlink()
    far_away_outlines(scene_dir / "far.geojson")
    with pytest.raises(MarsError, match="no outline overlaps"):
        GlacierScenes(str(scene_dir))
    (scene_dir / "far.geojson").unlink()
    empty_outlines(scene_dir / "empty.geojson")
    with pytest.raises(MarsError, match="empty"):
        GlacierScenes(str(scene_dir))


def test_missing_partner_and_two_outline_files_are_refused(scene_dir: Path) -> None:
    shutil.copy(scene_dir / "outlines.geojson", scene_dir / "second.geojson")
    with pytest.raises(MarsError, match="exactly one outlines file"):
        GlacierScenes(str(scene_dir))
    (scene_dir / "second.geojson").unlink()
    next(scene_dir.glob("*_B4_*")).unlink()
    with pytest.raises(MarsError, match="no matching"):
        GlacierScenes(str(scene_dir))
