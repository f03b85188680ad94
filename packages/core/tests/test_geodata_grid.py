"""The one grid check: CRS by meaning, shape, transform within a sub-pixel tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from geodata_testutil import MARS_STEREO, MARS_STEREO_UNKNOWN, MARS_TRANSFORM, write_tif

from mars_core.errors import MarsError
from mars_core.geodata import GeoScene, check_same_grid, same_crs


def _shifted(cols: float, rows: float) -> Affine:
    """MARS_TRANSFORM moved by a fraction of a pixel (explicit algebra, no operator deprecations)."""
    t = MARS_TRANSFORM
    return Affine(t.a, t.b, t.c + cols * t.a, t.d, t.e, t.f + rows * t.e)


def _check(a_path, b_path, tol=0.01):
    with rasterio.open(a_path) as a, rasterio.open(b_path) as b:
        check_same_grid(a_path, a, b_path, b, tol)


def test_mars_datum_named_differently_is_the_same_grid(tmp_path):
    a = write_tif(tmp_path / "img.tif", np.zeros((40, 50), np.uint16), MARS_STEREO, MARS_TRANSFORM)
    b = write_tif(tmp_path / "mask.tif", np.zeros((40, 50), np.uint8), MARS_STEREO_UNKNOWN, MARS_TRANSFORM)
    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert "MARS" in da.crs.to_wkt() and "MARS" not in db.crs.to_wkt()  # the files really differ in names
        assert same_crs(da.crs, db.crs)
    _check(a, b)


@pytest.mark.parametrize(("change", "match"), [
    ({"crs": MARS_STEREO_UNKNOWN.replace("3396190", "3376200")}, "different CRSs"),  # another radius
    ({"crs": MARS_STEREO.replace('"latitude_of_origin",-85', '"latitude_of_origin",85')}, "different CRSs"),
    ({"shape": (40, 51)}, "different shapes"),
    ({"transform": _shifted(0.5, 0)},
     r"different geotransforms \(grids differ by up to 0.5 px"),
])
def test_other_grids_are_refused_in_one_line(tmp_path, change, match):
    a = write_tif(tmp_path / "a.tif", np.zeros((40, 50), np.uint16), MARS_STEREO, MARS_TRANSFORM)
    shape = change.get("shape", (40, 50))
    b = write_tif(tmp_path / "b.tif", np.zeros(shape, np.uint16), change.get("crs", MARS_STEREO_UNKNOWN),
                  change.get("transform", MARS_TRANSFORM))
    with pytest.raises(MarsError, match=f"not on one grid: {match}") as info:
        _check(a, b)
    assert "\n" not in str(info.value) and "align the pair first" in str(info.value)


def test_sub_pixel_noise_is_accepted(tmp_path):
    a = write_tif(tmp_path / "a.tif", np.zeros((40, 50), np.uint16), MARS_STEREO, MARS_TRANSFORM)
    b = write_tif(tmp_path / "b.tif", np.zeros((40, 50), np.uint16), MARS_STEREO_UNKNOWN,
                  _shifted(0.004, -0.003))
    _check(a, b)
    with pytest.raises(MarsError, match="tolerance 0.001 px"):
        _check(a, b, tol=0.001)


def test_scene_files_are_checked_once_when_built(tmp_path):
    a = write_tif(tmp_path / "t1.tif", np.zeros((40, 50), np.uint16), MARS_STEREO, MARS_TRANSFORM)
    b = write_tif(tmp_path / "t2.tif", np.zeros((40, 50), np.uint16), MARS_STEREO,
                  _shifted(2, 0))
    with pytest.raises(MarsError, match="t2.tif are not on one grid"):
        GeoScene.from_files({"a": a, "b": b})
