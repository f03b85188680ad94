"""Streaming scene prediction on small SYNTHETIC GeoTIFFs written in each test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from affine import Affine
from rasterio.crs import CRS

from mars_core.data import InputContract, Normalisation
from mars_core.errors import MarsError
from mars_core.raster import PredictionResult, predict_scene
from mars_core.raster.tiling import axis_tiles, make_grid
from mars_core.tasks import TaskKind

MARS_WKT = (
    'PROJCS["Oblique_Stereographic",GEOGCS["GCS_D_MARS",DATUM["MARS",SPHEROID["MARS",3396190,0]],'
    'PRIMEM["Reference Meridian",0],UNIT["degree",0.0174532925199433]],PROJECTION["Stereographic"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
TRANSFORM = Affine(0.25, 0.0, 1000.0, 0.0, -0.25, 5000.0)
MEAN, STD = 100.0, 50.0
# Tests that check probabilities to 1e-5 read the float32 output (uint8 is the default).
F32 = {"probability": "float32"}


def write_tif(path: Path, data: np.ndarray, *, crs=MARS_WKT, transform=TRANSFORM, nodata=None) -> Path:
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(data)
    return path


def contract(kind=TaskKind.SEGMENTATION, bands=1, tile=64, **kw) -> InputContract:
    return InputContract(
        kind=kind,
        bands=[f"b{i}" for i in range(bands)],
        normalisation=Normalisation(mean=[MEAN] * bands, std=[STD] * bands),
        tile_size=tile,
        n_inputs=2 if kind is TaskKind.CHANGE_DETECTION else 1,
        **kw,
    )


class AffineOfBand0(torch.nn.Module):
    """logit = A * normalised band 0 + B: the probability at every pixel is known exactly."""

    A, B = 1.5, -0.25

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A * x[:, :1] + self.B


class AbsDiff(torch.nn.Module):
    A, B = 2.0, -1.0

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return self.A * (x1[:, :1] - x2[:, :1]).abs() + self.B


class FixedConv(torch.nn.Module):
    """A k x k conv with fixed random weights: receptive radius k // 2, zero padding."""

    def __init__(self, k: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = torch.nn.Parameter(torch.randn(1, 1, k, k, generator=g), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x[:, :1], self.weight, padding=self.weight.shape[-1] // 2)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def scene(h=300, w=517, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 200, (h, w)).astype(np.float32)


def read(path: Path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.profile, ds.crs


def test_affine_model_reproduced_exactly_across_seams(tmp_path):
    raw = scene()
    src = write_tif(tmp_path / "in.tif", raw)
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "out.tif", overlap=0.25, progress=False, **F32)
    assert isinstance(res, PredictionResult)
    assert res.paths == (tmp_path / "out.tif", tmp_path / "out.prob.tif", tmp_path / "out.geojson")
    assert all(p.exists() for p in res.paths)
    assert res.n_tiles == 6 * 11 and res.megapixels == pytest.approx(300 * 517 / 1e6)
    expected = sigmoid(AffineOfBand0.A * (raw.astype(np.float64) - MEAN) / STD + AffineOfBand0.B)
    prob, prof, crs = read(res.probability)
    assert np.abs(prob - expected).max() < 1e-5
    mask, mprof, mcrs = read(res.mask)
    assert np.array_equal(mask, (prob >= 0.5).astype(np.uint8))
    with rasterio.open(src) as s:
        for p, c in ((prof, crs), (mprof, mcrs)):
            assert c.to_wkt() == s.crs.to_wkt() and p["transform"] == s.transform
            assert p["tiled"] and p["blockxsize"] == p["blockysize"] == 256
            assert p["compress"] == "zstd"
    assert prof["dtype"] == "float32" and math.isnan(prof["nodata"])
    assert mprof["dtype"] == "uint8" and mprof["nodata"] == 255
    assert not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize("k", [3, 5])
def test_centre_crop_removes_seams_when_margin_covers_receptive_field(tmp_path, k):
    raw = scene(seed=1)
    src = write_tif(tmp_path / "in.tif", raw)
    model = FixedConv(k)
    x = torch.from_numpy((raw - MEAN) / STD)[None, None]
    expected = torch.sigmoid(model(x))[0, 0].double().numpy()
    res = predict_scene(model, contract(), [src], tmp_path / "out.tif", overlap=0.25, progress=False, **F32)
    assert np.abs(read(res.probability)[0] - expected).max() < 1e-5
    # Without overlap the seams show: proves the comparison above can fail.
    bad = predict_scene(model, contract(), [src], tmp_path / "bad.tif", overlap=0.0, progress=False, **F32)
    assert np.abs(read(bad.probability)[0] - expected).max() > 1e-3


def test_change_detection_pair(tmp_path):
    a, b = scene(seed=2), scene(seed=3)
    p1, p2 = write_tif(tmp_path / "t1.tif", a), write_tif(tmp_path / "t2.tif", b)
    kind = TaskKind.CHANGE_DETECTION
    res = predict_scene(AbsDiff(), contract(kind), [p1, p2], tmp_path / "chg.tif", progress=False, **F32)
    expected = sigmoid(AbsDiff.A * np.abs(a.astype(np.float64) - b) / STD + AbsDiff.B)
    assert np.abs(read(res.probability)[0] - expected).max() < 1e-5


def test_nodata_stays_nodata(tmp_path):
    raw = np.random.default_rng(4).integers(1, 200, (2, 300, 517)).astype(np.uint16)
    raw[0, 100:180, 200:330] = 0  # nodata in band 0 only
    raw[1, 5, 7] = 0  # one pixel in band 1
    src = write_tif(tmp_path / "in.tif", raw, nodata=0)
    res = predict_scene(AffineOfBand0(), contract(bands=2), [src], tmp_path / "o.tif", progress=False, **F32)
    prob, mask = read(res.probability)[0], read(res.mask)[0]
    invalid = (raw == 0).any(axis=0)
    assert np.isnan(prob[invalid]).all() and (mask[invalid] == 255).all()
    assert not np.isnan(prob[~invalid]).any() and (mask[~invalid] <= 1).all()
    assert res.n_valid_pixels == int((~invalid).sum())
    # Valid pixels next to the hole are unaffected by it (the affine model is pointwise).
    expected = sigmoid(AffineOfBand0.A * (raw[0].astype(np.float64) - MEAN) / STD + AffineOfBand0.B)
    assert np.abs(prob[~invalid] - expected[~invalid]).max() < 1e-5


def test_nan_pixels_are_nodata(tmp_path):
    raw = scene()
    raw[:, 40:60] = np.nan
    src = write_tif(tmp_path / "in.tif", raw)
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False, **F32)
    prob = read(res.probability)[0]
    assert np.isnan(prob[:, 40:60]).all() and not np.isnan(prob[:, :40]).any()


def test_default_probability_is_uint8_with_scale_tags_and_nodata(tmp_path):
    raw = np.random.default_rng(4).integers(1, 200, (300, 517)).astype(np.uint16)
    raw[100:180, 200:330] = 0
    src = write_tif(tmp_path / "in.tif", raw, nodata=0)
    u8 = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "u8.tif", progress=False)
    f32 = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "f32.tif", progress=False,
                        probability="float32")
    with rasterio.open(u8.probability) as ds:
        dn, scale, offset, nodata = ds.read(1), ds.scales[0], ds.offsets[0], ds.nodata
        assert ds.dtypes == ("uint8",) and ds.profile["compress"] == "zstd"
    assert (scale, offset, nodata) == (pytest.approx(1 / 254), 0.0, 255)
    exact = read(f32.probability)[0]
    invalid = raw == 0
    assert (dn[invalid] == 255).all() and (dn[~invalid] <= 254).all()
    decoded = dn[~invalid] * scale + offset
    # Rounding to the nearest of 254 steps: never more than half a step away.
    assert np.abs(decoded - exact[~invalid]).max() <= 0.5 / 254 + 1e-7
    # The mask is thresholded before encoding, so it is identical in both formats.
    assert np.array_equal(read(u8.mask)[0], read(f32.mask)[0])
    assert u8.probability.stat().st_size < f32.probability.stat().st_size


def test_unknown_probability_format_is_a_user_error(tmp_path):
    src = write_tif(tmp_path / "in.tif", scene())
    with pytest.raises(MarsError, match="probability must be one of uint8, float32"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False, probability="f16")
    assert no_outputs(tmp_path, "in.tif")


def no_outputs(tmp_path: Path, *inputs: str) -> bool:
    return sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs)


def test_all_nodata_scene_is_an_error_and_writes_nothing(tmp_path):
    src = write_tif(tmp_path / "in.tif", np.zeros((300, 517), np.uint16), nodata=0)
    with pytest.raises(MarsError, match="contains no valid pixels"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False)
    assert no_outputs(tmp_path, "in.tif")


def test_not_a_raster(tmp_path):
    bogus = tmp_path / "notes.tif"
    bogus.write_text("this is not a GeoTIFF")
    with pytest.raises(MarsError, match="notes.tif.*cannot be opened as a raster") as exc:
        predict_scene(AffineOfBand0(), contract(), [bogus], tmp_path / "o.tif", progress=False)
    assert "\n" not in str(exc.value)
    assert no_outputs(tmp_path, "notes.tif")


def test_wrong_band_count_and_wrong_number_of_inputs(tmp_path):
    src = write_tif(tmp_path / "in.tif", scene())
    with pytest.raises(MarsError, match="has 1 band.*expects 3"):
        predict_scene(AffineOfBand0(), contract(bands=3), [src], tmp_path / "o.tif", progress=False)
    with pytest.raises(MarsError, match="expects 2 input scene"):
        predict_scene(AbsDiff(), contract(TaskKind.CHANGE_DETECTION), [src], tmp_path / "o.tif", progress=False)
    assert no_outputs(tmp_path, "in.tif")


@pytest.mark.parametrize(
    ("other", "match"),
    [
        ({"transform": Affine(0.25, 0.0, 1000.25, 0.0, -0.25, 5000.0)}, "different geotransforms.*1 px"),
        ({"crs": "IAU_2015:49910"}, "different CRSs"),
        ({"shape": (300, 516)}, "different shapes"),
    ],
)
def test_pair_on_different_grids_is_refused(tmp_path, other, match):
    a = write_tif(tmp_path / "a.tif", scene())
    b_data = scene()[: other.get("shape", (300, 517))[0], : other.get("shape", (300, 517))[1]]
    b = write_tif(
        tmp_path / "b.tif",
        b_data,
        crs=other.get("crs", MARS_WKT),
        transform=other.get("transform", TRANSFORM),
    )
    with pytest.raises(MarsError, match=f"{match}.*align the pair first"):
        predict_scene(AbsDiff(), contract(TaskKind.CHANGE_DETECTION), [a, b], tmp_path / "o.tif", progress=False)
    assert no_outputs(tmp_path, "a.tif", "b.tif")


def test_pair_within_grid_tolerance_is_accepted(tmp_path):
    a = write_tif(tmp_path / "a.tif", scene())
    shifted = Affine(0.25, 0.0, 1000.00025, 0.0, -0.25, 5000.0)  # 0.001 px
    b = write_tif(tmp_path / "b.tif", scene(seed=9), transform=shifted)
    res = predict_scene(AbsDiff(), contract(TaskKind.CHANGE_DETECTION), [a, b], tmp_path / "o.tif", progress=False)
    assert res.mask.exists()


def test_existing_output_is_not_overwritten(tmp_path):
    src = write_tif(tmp_path / "in.tif", scene())
    (tmp_path / "o.prob.tif").write_bytes(b"keep me")
    with pytest.raises(MarsError, match="already exists"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False, **F32)
    assert (tmp_path / "o.prob.tif").read_bytes() == b"keep me" and not (tmp_path / "o.tif").exists()
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False, **F32, overwrite=True)
    assert read(res.probability)[0].shape == (300, 517)


def test_failure_midway_leaves_no_partial_files(tmp_path):
    class Boom(torch.nn.Module):
        calls = 0

        def forward(self, x):
            Boom.calls += 1
            if Boom.calls > 3:
                raise RuntimeError("boom")
            return x[:, :1]

    src = write_tif(tmp_path / "in.tif", scene())
    with pytest.raises(RuntimeError, match="boom"):
        predict_scene(Boom(), contract(), [src], tmp_path / "o.tif", batch_size=2, progress=False)
    assert no_outputs(tmp_path, "in.tif")


def test_bad_tiling_is_a_user_error(tmp_path):
    src = write_tif(tmp_path / "in.tif", scene())
    with pytest.raises(MarsError, match="too small for overlap"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", tile=4, overlap=0.9, progress=False)
    with pytest.raises(MarsError, match="0 <= overlap < 1"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", overlap=1.0, progress=False)
    assert no_outputs(tmp_path, "in.tif")


def squares_scene() -> np.ndarray:
    """Raw 200 inside objects, 0 outside: AffineOfBand0 then gives p>0.5 exactly on objects."""
    raw = np.zeros((600, 517), np.float32)
    raw[20:30, 40:50] = 200  # 10x10 px = 6.25 m2 at 0.25 m/px
    raw[250:262, 100:110] = 200  # 12x10 px straddling the strip seam at row 256: 7.5 m2
    raw[100:102, 300:302] = 200  # 2x2 px = 0.25 m2, dropped by min_area_m2=1
    # a U open at the top, cut by the seam at row 512 into three pieces: one polygon
    raw[490:520, 400:405] = 200
    raw[490:520, 420:425] = 200
    raw[515:520, 405:420] = 200
    raw[5:595, 500:505] = 200  # tall bar crossing both seams: 590x5 px
    return raw


def test_polygons_areas_seams_and_min_area(tmp_path):
    src = write_tif(tmp_path / "in.tif", squares_scene())
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", min_area_m2=1.0, progress=False)
    fc = json.loads(res.polygons.read_text())
    with rasterio.open(src) as s:
        assert fc["crs"]["properties"]["name"] == s.crs.to_wkt()
    props = sorted((f["properties"] for f in fc["features"]), key=lambda p: p["area_px"])
    areas = [p["area_m2"] for p in props]
    u_px = 2 * 30 * 5 + 5 * 15
    assert areas == pytest.approx(sorted([6.25, 7.5, u_px * 0.0625, 590 * 5 * 0.0625]))
    assert res.n_polygons == 4 == len({f["id"] for f in fc["features"]})
    assert all(0.5 < p["mean_prob"] <= 1 for p in props)
    by_area = {
        round(p["area_m2"], 4): f
        for p, f in zip(props, sorted(fc["features"], key=lambda f: f["properties"]["area_px"]), strict=True)
    }
    straddler = by_area[7.5]["geometry"]
    assert straddler["type"] == "Polygon" and len(straddler["coordinates"]) == 1
    xs = [c[0] for c in straddler["coordinates"][0]]
    ys = [c[1] for c in straddler["coordinates"][0]]
    # world coordinates: x = 1000 + col * 0.25, y = 5000 - row * 0.25
    assert (min(xs), max(xs), min(ys), max(ys)) == pytest.approx((1025.0, 1027.5, 4934.5, 4937.5))
    u = by_area[round(u_px * 0.0625, 4)]["geometry"]
    assert u["type"] == "Polygon"
    # without min_area_m2 the 2x2 square is kept
    res2 = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "p.tif", progress=False)
    assert res2.n_polygons == 5


def test_scene_without_crs(tmp_path):
    src = write_tif(tmp_path / "in.tif", squares_scene()[:300], crs=None)
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False)
    assert read(res.mask)[2] is None
    assert any("no CRS" in w for w in res.warnings)
    fc = json.loads(res.polygons.read_text())
    assert "crs" not in fc and fc["notes"]
    assert {f["properties"]["area_m2"] for f in fc["features"]} == {None}
    assert sorted(f["properties"]["area_px"] for f in fc["features"]) == [4, 100, 120, 295 * 5]
    with pytest.raises(MarsError, match="min_area_m2 needs areas"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "x.tif", min_area_m2=1, progress=False)


def test_iau_code_passes_through(tmp_path):
    src = write_tif(tmp_path / "in.tif", scene()[:70, :90], crs=CRS.from_user_input("IAU_2015:49910"))
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False)
    with rasterio.open(src) as s, rasterio.open(res.mask) as m:
        assert m.crs.to_wkt() == s.crs.to_wkt() and m.transform == s.transform


def test_scene_smaller_than_tile(tmp_path):
    raw = scene()[:30, :50]
    src = write_tif(tmp_path / "in.tif", raw)
    res = predict_scene(FixedConv(3), contract(), [src], tmp_path / "o.tif", progress=False, **F32)
    x = torch.from_numpy((raw - MEAN) / STD)[None, None]
    expected = torch.sigmoid(FixedConv(3)(x))[0, 0].double().numpy()
    assert res.n_tiles == 1 and np.abs(read(res.probability)[0] - expected).max() < 1e-5


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(517, 64, 0.25), (300, 64, 0.25), (64, 64, 0.5), (1000, 256, 0.125), (65, 64, 0.1)],
)
def test_tiles_partition_scene_and_keep_margin(length, tile, overlap):
    grid = make_grid(length, length, tile, overlap)
    ax = axis_tiles(length, tile, tile - grid.overlap_px)
    assert ax.own[0][0] == 0 and ax.own[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(ax.own[:-1], ax.own[1:], strict=True))
    for i, (s, (o0, o1)) in enumerate(zip(ax.starts, ax.own, strict=True)):
        assert s >= 0 and s + tile <= max(length, tile) and o0 < o1
        if i > 0:
            assert o0 - s >= grid.margin
        if i < len(ax.starts) - 1:
            assert s + tile - o1 >= grid.margin


def test_in_place_normalisation_matches_the_contract():
    """StripReader normalises in place; it must agree with Normalisation.apply."""
    from mars_core.raster.io import StripReader

    c = InputContract(
        kind=TaskKind.SEGMENTATION, bands=["a", "b"],
        normalisation=Normalisation(mean=[3.0, -7.5], std=[0.3, 11.0]), tile_size=8,
    )  # fmt: skip

    class FakeDs:
        shape, count, dtypes = (8, 8), 2, ("float32", "float32")

    reader = StripReader([FakeDs()], c, 8)
    x = torch.from_numpy(np.random.default_rng(0).normal(0, 20, (2, 8, 8)).astype(np.float32))
    mine = x.numpy().copy()
    np.subtract(mine, reader._mean_np, out=mine)
    np.divide(mine, reader._std_np, out=mine)
    mine = torch.from_numpy(mine)
    assert torch.equal(mine, c.normalisation.apply(x))


def test_narrow_scene_batches_span_rows_and_skipped_rows(tmp_path):
    raw = scene(300, 70, seed=5)
    raw[120:200] = np.nan  # whole tile rows without valid pixels: skipped, written as nodata
    src = write_tif(tmp_path / "in.tif", raw)
    model = FixedConv(3)
    res = predict_scene(model, contract(), [src], tmp_path / "o.tif", batch_size=5, progress=False, **F32)
    x = torch.from_numpy(np.nan_to_num((raw - MEAN) / STD))[None, None]
    expected = torch.sigmoid(model(x))[0, 0].double().numpy()
    prob = read(res.probability)[0]
    ok = ~np.isnan(raw)
    assert np.isnan(prob[120:200]).all()
    assert np.abs(prob[ok] - expected[ok]).max() < 1e-5


MARS_LONLAT_WKT = (
    'GEOGCS["GCS_Mars_2000_Sphere",DATUM["D_Mars_2000_Sphere",SPHEROID["Mars_2000_Sphere_IAU_IAG",'
    '3396190,0]],PRIMEM["Reference_Meridian",0],UNIT["Degree",0.0174532925199433]]'
)
MARS_RADIUS = 3396190.0


def test_geographic_mars_scene_gets_areas_in_m2_on_the_mars_sphere(tmp_path):
    # 0.01 degree pixels (about 593 m on Mars) from 60 N: a pixel's area shrinks with cos(lat).
    step = 0.01
    transform = Affine(step, 0.0, 10.0, 0.0, -step, 60.0)
    src = write_tif(tmp_path / "in.tif", squares_scene(), crs=MARS_LONLAT_WKT, transform=transform)
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False)
    assert res.warnings == ()
    with rasterio.open(src) as s, rasterio.open(res.mask) as m:
        assert m.crs == s.crs and m.transform == s.transform
    fc = json.loads(res.polygons.read_text())
    by_px = {f["properties"]["area_px"]: f["properties"]["area_m2"] for f in fc["features"]}
    side = MARS_RADIUS * math.radians(step)  # a pixel's side at the equator

    # small square, rows 20-30: planar approximation at its centre latitude
    assert by_px[100] == pytest.approx(100 * side * side * math.cos(math.radians(60 - 0.25)), rel=1e-5)
    # square cut by the strip seam at row 256 (rows 250-262): both pieces' areas are summed
    assert by_px[120] == pytest.approx(120 * side * side * math.cos(math.radians(60 - 2.56)), rel=1e-5)
    # tall bar, rows 5-595, across both seams: Archimedes' zone area on a sphere
    zone = MARS_RADIUS**2 * math.radians(5 * step) * (math.sin(math.radians(59.95)) - math.sin(math.radians(54.05)))
    assert by_px[590 * 5] == pytest.approx(zone, rel=1e-9)
    # the same pixel count is smaller nearer the pole: areas really vary by row
    assert by_px[100] / 100 < by_px[120] / 120

    # min_area_m2 works on geographic scenes too: under 50 km² only the U (375 px) and the bar stay
    kept = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "k.tif", min_area_m2=5e7, progress=False)
    areas = [f["properties"]["area_m2"] for f in json.loads(kept.polygons.read_text())["features"]]
    assert sorted(areas) == pytest.approx(sorted(a for a in by_px.values() if a >= 5e7)) and len(areas) == 2


def test_ellipsoid_areas_match_published_and_integrated_values():
    from scipy.integrate import quad

    from mars_core.raster.polygons import ellipsoid_of, row_areas_m2

    assert ellipsoid_of(CRS.from_wkt(MARS_LONLAT_WKT)) == (MARS_RADIUS, 0.0)
    wgs84 = CRS.from_epsg(4326)
    a, e2 = ellipsoid_of(wgs84)
    assert a == 6378137.0 and e2 == pytest.approx(0.00669437999014, rel=1e-9)
    # one-degree rows over the whole globe add up to WGS 84's published surface area
    rows, notes = row_areas_m2(wgs84, Affine(1.0, 0, -180.0, 0, -1.0, 90.0), 180)
    assert notes == [] and rows is not None
    assert rows.sum() * 360 == pytest.approx(510_065_621.724e6, rel=1e-9)

    # Mars IAU 2000 ellipsoid (a 3396190 m, b 3376200 m): a 1x1 degree cell at 45 N against a
    # numerical integral of M(phi) N(phi) cos(phi)
    mars_ell = CRS.from_wkt(
        'GEOGCS["Mars 2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190,169.894447223612]],'
        'PRIMEM["Reference_Meridian",0],UNIT["Decimal_Degree",0.0174532925199433]]'
    )
    a, e2 = ellipsoid_of(mars_ell)
    rows, _ = row_areas_m2(mars_ell, Affine(1.0, 0, 0.0, 0, -1.0, 46.0), 1)

    def m_n_cos(phi: float) -> float:
        w = 1 - e2 * math.sin(phi) ** 2
        return a * (1 - e2) / w**1.5 * a / w**0.5 * math.cos(phi)

    integral, _ = quad(m_n_cos, math.radians(45), math.radians(46))
    assert rows[0] == pytest.approx(integral * math.radians(1), rel=1e-9)
    assert a * math.sqrt(1 - e2) == pytest.approx(3376200.0, abs=1.0)


def test_geographic_areas_refused_when_they_cannot_be_right(tmp_path):
    from mars_core.raster.polygons import row_areas_m2

    rotated = Affine(0.01, 0.001, 10.0, 0.001, -0.01, 60.0)
    rows, notes = row_areas_m2(CRS.from_wkt(MARS_LONLAT_WKT), rotated, 10)
    assert rows is None and "rotated" in notes[0]
    beyond_pole = Affine(1.0, 0, 0.0, 0, -1.0, 95.0)
    rows, notes = row_areas_m2(CRS.from_wkt(MARS_LONLAT_WKT), beyond_pole, 10)
    assert rows is None and "beyond the poles" in notes[0]
    src = write_tif(tmp_path / "in.tif", squares_scene()[:300], crs=MARS_LONLAT_WKT, transform=rotated)
    with pytest.raises(MarsError, match="min_area_m2 needs areas in m² but scene is geographic with a rotated grid"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "x.tif", min_area_m2=1, progress=False)
    assert no_outputs(tmp_path, "in.tif")


class NeedsNCHW(torch.nn.Module):
    """A model written for the default layout only (like code that calls .view on its input)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 1, 3, padding=1)
        torch.nn.init.constant_(self.conv.weight, 0.1)
        torch.nn.init.constant_(self.conv.bias, -0.2)
        self.calls: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        self.calls.append(nhwc)
        if nhwc:
            raise RuntimeError("view size is not compatible with input tensor's size and stride")
        return self.conv(x)


def test_channels_last_gives_the_same_outputs_and_restores_the_model(tmp_path):
    data = np.stack([scene(), scene(seed=1)])
    src = write_tif(tmp_path / "in.tif", data)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
    seen: list[bool] = []

    def record(module, args):
        x = args[0]
        seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())

    model.register_forward_pre_hook(record)
    nhwc = predict_scene(model, contract(bands=2), [src], tmp_path / "a.tif", progress=False, **F32)
    assert seen and all(seen)  # the model really ran on NHWC input
    assert all(p.is_contiguous() for p in model.parameters())  # and got its layout back
    seen.clear()
    nchw = predict_scene(model, contract(bands=2), [src], tmp_path / "b.tif", channels_last=False, progress=False,
                         **F32)
    assert seen and not any(seen)
    np.testing.assert_allclose(read(nhwc.probability)[0], read(nchw.probability)[0], rtol=0, atol=1e-5)
    assert nhwc.warnings == () == nchw.warnings


def test_model_that_cannot_take_channels_last_falls_back_with_a_note(tmp_path):
    src = write_tif(tmp_path / "in.tif", np.stack([scene(), scene(seed=1)]))
    model = NeedsNCHW()
    res = predict_scene(model, contract(bands=2), [src], tmp_path / "a.tif", progress=False, **F32)
    assert model.calls[0] is True and not any(model.calls[1:]) and len(model.calls) > 2
    assert len(res.warnings) == 1 and "channels_last" in res.warnings[0] and "view size" in res.warnings[0]
    ref = predict_scene(NeedsNCHW(), contract(bands=2), [src], tmp_path / "b.tif", channels_last=False,
                        progress=False, **F32)
    assert np.array_equal(read(res.probability)[0], read(ref.probability)[0], equal_nan=True)


def test_write_error_mid_scene_reaches_the_caller_and_leaves_no_file(tmp_path, monkeypatch):
    from mars_core.raster import predict as predict_module

    calls = {"n": 0}
    real_write = predict_module._BlockWriter._write

    def failing_write(self, h):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        real_write(self, h)

    monkeypatch.setattr(predict_module._BlockWriter, "_write", failing_write)
    src = write_tif(tmp_path / "in.tif", scene(h=600))  # 3 block strips of 256 rows
    with pytest.raises(OSError, match="disk full"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", progress=False)
    assert calls["n"] == 2 and no_outputs(tmp_path, "in.tif")


def test_model_error_mid_scene_leaves_no_file(tmp_path):
    class FailsLater(AffineOfBand0):
        calls = 0

        def forward(self, x):
            FailsLater.calls += 1
            if FailsLater.calls == 5:
                raise RuntimeError("out of memory (simulated)")
            return super().forward(x)

    src = write_tif(tmp_path / "in.tif", scene(h=600))
    with pytest.raises(RuntimeError, match="out of memory"):
        predict_scene(FailsLater(), contract(), [src], tmp_path / "o.tif", batch_size=2, progress=False)
    assert FailsLater.calls == 5 and no_outputs(tmp_path, "in.tif")


def test_min_area_px_works_without_any_crs(tmp_path):
    # A pixel threshold needs no georeference: the 2x2 square (4 px) goes, the rest stays.
    src = write_tif(tmp_path / "in.tif", squares_scene()[:300], crs=None)
    res = predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "o.tif", min_area_px=5, progress=False)
    fc = json.loads(res.polygons.read_text())
    assert sorted(f["properties"]["area_px"] for f in fc["features"]) == [100, 120, 295 * 5]
    assert int((read(res.mask)[0] == 1).sum()) == 4 + 100 + 120 + 295 * 5  # the mask keeps everything
    with pytest.raises(MarsError, match="min_area_px must be a non-negative whole number"):
        predict_scene(AffineOfBand0(), contract(), [src], tmp_path / "x.tif", min_area_px=-1, progress=False)


def test_per_component_and_whole_strip_vectorising_give_the_same_polygons(monkeypatch):
    from shapely.geometry import shape

    from mars_core.raster.polygons import SeamPolygonizer

    rng = np.random.default_rng(3)
    mask = ndimage_blobs(rng, (300, 400))
    mask[100:140, 100:140] = True  # a ring with a component inside its hole
    mask[110:130, 110:130] = False
    mask[115:125, 115:125] = True
    prob = rng.uniform(0.5, 1.0, mask.shape).astype(np.float32)

    def polygons(per_component_max: int) -> list:
        monkeypatch.setattr(SeamPolygonizer, "PER_COMPONENT_MAX", per_component_max)
        monkeypatch.setattr(SeamPolygonizer, "PER_COMPONENT_MAX_COVER", 1.0)
        out: list = []
        poly = SeamPolygonizer(300, TRANSFORM, np.full(300, 0.0625), 0.0, lambda g, p: out.append((g, p)))
        for r0 in range(0, 300, 128):  # three strips, so seams are crossed too
            poly.add_strip(r0, mask[r0 : r0 + 128], prob[r0 : r0 + 128])
        poly.finish()
        return sorted(((shape(g).wkt, p["area_px"], round(p["mean_prob"], 6)) for g, p in out))

    calls = {"n": 0}
    from mars_core.raster import polygons as polygons_module

    real_shapes = polygons_module.shapes

    def counting_shapes(*args, **kwargs):
        calls["n"] += 1
        return real_shapes(*args, **kwargs)

    monkeypatch.setattr(polygons_module, "shapes", counting_shapes)
    per_component = polygons(10**9)
    per_component_calls, calls["n"] = calls["n"], 0
    whole_strip = polygons(0)
    assert calls["n"] == 3 and per_component_calls > 20  # both paths really ran
    assert len(per_component) > 20 and per_component == whole_strip
    assert any("), (" in wkt for wkt, _, _ in per_component)  # a polygon with a hole took part


def ndimage_blobs(rng, shape_hw):
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.normal(size=shape_hw), 4)
    return noise > 0.12
