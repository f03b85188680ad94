"""Scenes, labels and tiles from real GeoTIFF / GeoJSON / GeoPackage files (all SYNTHETIC)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import torch
from geodata_testutil import UTM45N, UTM_TRANSFORM, geojson_to_gpkg, write_geojson, write_tif
from rasterio.warp import transform as warp_points
from rasterio.windows import Window

from mars_core.data import Normalisation
from mars_core.errors import MarsError
from mars_core.geodata import (
    IGNORE,
    GeoScene,
    RasterLabels,
    TileDataset,
    TimeSeries,
    VectorLabels,
    scene_windows,
)

H, W = 60, 70


@pytest.fixture
def rgb_nir(tmp_path):
    """An RGB file (bands valued 10, 20, 30 + column) and a one-band NIR file (40 + row)."""
    rows, cols = np.mgrid[0:H, 0:W]
    rgb = np.stack([10 + cols, 20 + cols, 30 + cols]).astype(np.uint8)
    nir = (40 + rows).astype(np.uint8)
    nir[5, 7] = 0  # nodata in the NIR file only
    return write_tif(tmp_path / "scene_RGB.tif", rgb), write_tif(tmp_path / "scene_B4.tif", nir, nodata=0)


def _pixel_rect_lonlat(r0: int, r1: int, c0: int, c1: int) -> list[tuple[float, float]]:
    """The UTM rectangle of pixel rows r0:r1, cols c0:c1, as a lon/lat ring."""
    xs, ys = [], []
    for c, r in ((c0, r0), (c1, r0), (c1, r1), (c0, r1), (c0, r0)):
        t = UTM_TRANSFORM
        x, y = t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f
        xs.append(x)
        ys.append(y)
    lon, lat = warp_points(UTM45N, "EPSG:4326", xs, ys)
    return list(zip(lon, lat, strict=True))


def test_bands_stack_in_the_named_order(rgb_nir):
    rgb, nir = rgb_nir
    scene = GeoScene.from_files({"rgb": rgb, "nir": nir}, bands={"rgb": ["red", "green", "blue"], "nir": ["nir"]})
    assert scene.bands == ["red", "green", "blue", "nir"]
    raw, _ = scene.read(Window(3, 2, 4, 4))
    assert raw[:, 0, 0].tolist() == [13, 23, 33, 42]
    picked = GeoScene.from_files({"rgb": rgb, "nir": nir}, bands=["red", "green", "blue", "nir"],
                                 order=["nir", "blue", "red"])
    raw, _ = picked.read(Window(3, 2, 4, 4))
    assert picked.bands == ["nir", "blue", "red"] and raw[:, 0, 0].tolist() == [42, 33, 13]
    with pytest.raises(MarsError, match="has 3 band.*2 name"):
        GeoScene.from_files({"rgb": rgb}, bands={"rgb": ["red", "green"]})


def test_nodata_in_any_band_is_ignored_in_the_mask(rgb_nir, tmp_path):
    rgb, nir = rgb_nir
    scene = GeoScene.from_files({"rgb": rgb, "nir": nir}, bands=["r", "g", "b", "nir"])
    labels = write_tif(tmp_path / "lab.tif", np.ones((H, W), np.uint8))
    ds = TileDataset([scene], scene_windows(0, scene.shape, 16), [RasterLabels(labels).bind(scene)],
                     Normalisation(mean=[0] * 4, std=[1] * 4))
    item = ds[0]
    assert item["image"].shape == (4, 16, 16) and item["mask"].shape == (1, 16, 16)
    assert item["mask"][0, 5, 7] == IGNORE and item["image"][:, 5, 7].tolist() == [0, 0, 0, 0]
    assert int((item["mask"] == IGNORE).sum()) == 1 and item["image"][3, 5, 6] == 45


def test_raster_labels_map_and_ignore_value(rgb_nir, tmp_path):
    rgb, _ = rgb_nir
    scene = GeoScene.from_files(rgb)
    raw = np.full((H, W), 255, np.uint8)
    raw[:10] = 1
    raw[10:20] = 9  # "cloud": ignore
    path = write_tif(tmp_path / "mask.tif", raw)
    out = RasterLabels(path, label_map={1: 1, 255: 0}, ignore_value=9).bind(scene).read(Window(0, 0, W, H))
    assert (out[:10] == 1).all() and (out[10:20] == IGNORE).all() and (out[20:] == 0).all()
    raw[30, 30] = 7
    write_tif(path, raw)
    with pytest.raises(MarsError, match=r"value\(s\) \[7\] not in label_map"):
        RasterLabels(path, label_map={1: 1, 255: 0}, ignore_value=9).bind(scene).read(Window(0, 0, W, H))


@pytest.mark.parametrize("fmt", ["geojson", "gpkg"])
def test_vector_labels_in_4326_burn_the_hand_computed_mask(rgb_nir, tmp_path, fmt):
    rgb, _ = rgb_nir
    scene = GeoScene.from_files(rgb)
    rings = [_pixel_rect_lonlat(10, 20, 5, 15), _pixel_rect_lonlat(40, 55, 30, 62)]
    path = write_geojson(tmp_path / "outlines.geojson", rings)
    if fmt == "gpkg":
        path = geojson_to_gpkg(path, tmp_path / "outlines.gpkg", "glacier_outlines")
    expected = np.zeros((H, W), np.uint8)
    expected[10:20, 5:15] = 1
    expected[40:55, 30:62] = 1
    bound = VectorLabels(path).bind(scene)
    assert np.array_equal(bound.read(Window(0, 0, W, H)), expected)
    # window by window gives the same pixels
    win = Window(25, 35, 20, 20)
    assert np.array_equal(bound.read(win), expected[35:55, 25:45])
    by_class = VectorLabels(path, attribute="cls").bind(scene).read(Window(0, 0, W, H))
    assert set(np.unique(by_class[40:55, 30:62]).tolist()) == {2}


def test_vector_coverage_outside_is_ignored(rgb_nir, tmp_path):
    rgb, _ = rgb_nir
    scene = GeoScene.from_files(rgb)
    path = write_geojson(tmp_path / "lab.geojson", [_pixel_rect_lonlat(10, 20, 5, 15)])
    cover = write_geojson(tmp_path / "cover.geojson", [_pixel_rect_lonlat(0, 30, 0, 35)])
    out = VectorLabels(path, coverage=cover).bind(scene).read(Window(0, 0, W, H))
    assert (out[:30, :35] != IGNORE).all() and (out[30:] == IGNORE).all() and (out[:, 35:] == IGNORE).all()
    assert int((out == 1).sum()) == 100


def test_time_series_yields_dates_in_time_order_with_times(tmp_path):
    a = write_tif(tmp_path / "site_20210503.tif", np.full((H, W), 5, np.uint16))
    b = write_tif(tmp_path / "site_20200101.tif", np.full((H, W), 9, np.uint16))
    dates = [GeoScene.from_files(p, key="site", time_pattern=r"_(\d{8})", time_format="%Y%m%d") for p in (a, b)]
    series = TimeSeries.of(dates)
    assert series.times == [dt.datetime(2020, 1, 1), dt.datetime(2021, 5, 3)]
    item = TileDataset([series], scene_windows(0, series.shape, 32), None, Normalisation(mean=[0], std=[1]),
                       missing_labels="background")[0]
    assert float(item["image1"][0, 0, 0]) == 9 and float(item["image2"][0, 0, 0]) == 5
    j2000 = dt.datetime(2000, 1, 1, 12)
    expected = [(t - j2000).total_seconds() / 86400 for t in series.times]  # 7304.5, 7792.5
    assert torch.allclose(item["times"], torch.tensor(expected, dtype=torch.float32))
    # tiles at rows 0 and 28: the first owns rows 0-29, the shared rows 30-31 belong to the next
    assert (item["mask"][0, :30, :30] == 0).all() and (item["mask"][0, 30:] == IGNORE).all()


def test_scene_smaller_than_a_tile_is_padded_and_ignored(tmp_path):
    p = write_tif(tmp_path / "small.tif", np.full((20, 30), 3, np.uint8))
    scene = GeoScene.from_files(p)
    wins = scene_windows(0, scene.shape, 32)
    item = TileDataset([scene], wins, None, Normalisation(mean=[0], std=[1]), missing_labels="background")[0]
    assert item["image"].shape == (1, 32, 32)
    assert int((item["mask"] != IGNORE).sum()) == 20 * 30 and float(item["image"][0, 25, 25]) == 0


def test_the_readme_glacier_example_runs(tmp_path):
    """The core README's data-source example, executed on real (SYNTHETIC) files."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme[readme.index("## Geospatial training data"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    rows, cols = np.mgrid[0:96, 0:96]
    rgb = write_tif(tmp_path / "rgb.tif", np.stack([(rows + cols) % 256] * 3).astype(np.uint8))
    nir = write_tif(tmp_path / "b4.tif", (cols * 2).astype(np.uint8))
    outlines = geojson_to_gpkg(write_geojson(tmp_path / "rgi.geojson", [_pixel_rect_lonlat(0, 96, 0, 40)]),
                               tmp_path / "rgi.gpkg", "glacier_outlines")
    source = namespace["GlacierBlocks"](rgb, nir, outlines, tile=16, split=(0.5, 0.25, 0.25))
    contract = source.input_contract()
    assert contract.bands == ["red", "green", "blue", "nir"] and contract.normalisation.method == "robust"
    for split in source.splits():
        ds = source.dataset(split)
        assert len(ds) > 0
        item = ds[0]
        assert item["image"].shape == (4, 16, 16) and item["mask"].shape == (1, 16, 16)
