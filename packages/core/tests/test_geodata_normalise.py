"""Normalisation as a method: fixed stays as it was, robust is per scene and bit-depth free."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from geodata_testutil import write_tif

from mars_core.data import InputContract, Normalisation
from mars_core.geodata import GeoScene, TileDataset, scene_windows
from mars_core.raster.io import StripReader
from mars_core.tasks import TaskKind


def _scene_values(h=96, w=80):
    """A SYNTHETIC reflectance-like field in [0, 1] with a saturated patch."""
    rows, cols = np.mgrid[0:h, 0:w]
    v = 0.5 + 0.3 * np.sin(rows / 9.0) * np.cos(cols / 7.0) + 0.1 * np.random.default_rng(1).standard_normal((h, w))
    v = np.clip(v, 0, 1)
    v[:8, :8] = 1.0
    return v


def test_old_contracts_still_load_as_fixed():
    old = {"kind": "segmentation", "bands": ["a"], "normalisation": {"mean": [1.0], "std": [2.0]}, "tile_size": 8}
    c = InputContract.model_validate(old)
    assert c.normalisation.method == "fixed"
    torch.testing.assert_close(c.normalisation.apply(torch.full((1, 2, 2), 5.0)), torch.full((1, 2, 2), 2.0))


def test_robust_input_is_the_same_for_8_bit_and_10_bit_products(tmp_path):
    v = _scene_values()
    p8 = write_tif(tmp_path / "s8.tif", np.round(v * 255).astype(np.uint8))
    p10 = write_tif(tmp_path / "s10.tif", np.round(v * 1023).astype(np.uint16))
    items = []
    for path, sat in ((p8, 255), (p10, 1023)):
        norm = Normalisation.robust(1, p_low=2, p_high=98, saturated=[sat])
        scene = GeoScene.from_files(path)
        ds = TileDataset([scene], scene_windows(0, scene.shape, 96), None, norm, missing_labels="background")
        items.append(ds[0]["image"][:, :96, :80])
    a, b = items
    spread = float(a.max() - a.min())
    assert spread > 1.0  # a real stretch happened
    assert float((a - b).abs().max()) < 0.01 * spread
    # the stored method holds parameters, not the numbers of one scene
    assert Normalisation.robust(1, saturated=[255]).model_dump()["mean"] == [0.0]


def test_prediction_applies_the_same_robust_stretch(tmp_path):
    v = _scene_values()
    path = write_tif(tmp_path / "s10.tif", np.round(v * 1023).astype(np.uint16))
    norm = Normalisation.robust(1, saturated=[1023])
    scene = GeoScene.from_files(path)
    tile = TileDataset([scene], scene_windows(0, scene.shape, 96), None, norm, missing_labels="background")[0]
    contract = InputContract(kind=TaskKind.SEGMENTATION, bands=["band1"], normalisation=norm, tile_size=96)
    with rasterio.open(path) as ds:
        strips, valid = StripReader([ds], contract, 96).read(0)
    torch.testing.assert_close(strips[0][:, :96, :80], tile["image"][:, :96, :80])


def test_robust_refuses_a_band_without_valid_pixels(tmp_path):
    from mars_core.errors import MarsError

    path = write_tif(tmp_path / "flat.tif", np.full((20, 20), 255, np.uint8))
    with pytest.raises(MarsError, match="no valid, unsaturated pixel"):
        GeoScene.from_files(path).normalisation(Normalisation.robust(1, saturated=[255]))
