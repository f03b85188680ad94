"""Coregistration of real HiRISE crops moved, rotated and re-lit by known amounts."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from mars_core.cli import main
from mars_rsl.coregister import apply

DATA = Path(__file__).with_name("data")
MARS_EQC = ('PROJCS["Mars_Equirectangular",GEOGCS["Mars 2000",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",'
            '3396190,0]],PRIMEM["Greenwich",0],UNIT["Degree",0.0174532925199433]],PROJECTION["Equirectangular"],'
            'PARAMETER["standard_parallel_1",0],PARAMETER["central_meridian",0],PARAMETER["false_easting",0],'
            'PARAMETER["false_northing",0],UNIT["metre",1]]')


def _chip(name: str) -> np.ndarray:
    # upsampled x2 (bicubic): 454 px, about the size of a small RDR crop
    im = cv2.imread(str(DATA / name), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    return cv2.resize(im, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)


def _write(path: Path, arr: np.ndarray, nodata: float | None = None) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype="float32", crs=MARS_EQC, transform=from_origin(1000.0, 2000.0, 0.5, 0.5),
                       nodata=nodata) as ds:
        ds.write(arr.astype(np.float32), 1)


def _known(angle: float, shift: tuple[float, float], scale: float, shape: tuple[int, int]) -> np.ndarray:
    """3x3 matrix reference px -> moved px."""
    h, w = shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[:, 2] += shift
    return np.vstack([m, [0, 0, 1]])


@pytest.mark.parametrize("name,angle,shift,scale,gain,offset,gamma", [
    ("ESP_016814_2125_RED-0035.jpg", 3.0, (4.3, -2.6), 1.0, 0.7, 20.0, 0.9),
    ("ESP_049651_1050_RED-0043.jpg", -5.0, (-7.7, 3.2), 1.02, 1.3, -15.0, 1.15),
])
def test_known_transform_is_recovered_within_half_a_pixel(tmp_path: Path, name: str, angle: float,
                                                           shift: tuple[float, float], scale: float, gain: float,
                                                           offset: float, gamma: float) -> None:
    ref = _chip(name)
    a = _known(angle, shift, scale, ref.shape)
    moved = cv2.warpAffine(ref, a[:2], ref.shape[::-1], flags=cv2.INTER_CUBIC, borderValue=-1)
    inside = cv2.warpAffine(np.ones_like(ref), a[:2], ref.shape[::-1], flags=cv2.INTER_NEAREST, borderValue=0) > 0
    relit = np.clip(gain * 255.0 * (np.clip(moved, 0, 255) / 255.0) ** gamma + offset, 0, 255)
    relit = np.where(inside, relit, -1)
    _write(tmp_path / "ref.tif", ref)
    _write(tmp_path / "date2.tif", relit, nodata=-1)
    rc = main(["rsl", "coregister", "--reference", str(tmp_path / "ref.tif"), "--input", str(tmp_path / "date2.tif"),
               "--output", str(tmp_path / "out")])
    assert rc == 0
    rep = json.loads((tmp_path / "out" / "coregistration.json").read_text())[0]
    assert rep["inliers"] >= 12 and rep["rmse_px"] < 1.0
    est = np.array(rep["matrix"])
    # truth: a moved pixel p sits at A^-1 p in the reference; compare over the overlap
    ys, xs = np.mgrid[40:ref.shape[0] - 40:10, 40:ref.shape[1] - 40:10]
    p = np.c_[xs.ravel(), ys.ravel()].astype(np.float64)
    err = apply(est, p) - apply(np.linalg.inv(a), p)
    rmse = float(np.sqrt((err**2).sum(axis=1).mean()))
    assert rmse <= 0.5, rmse
    with rasterio.open(tmp_path / "out" / "date2.coreg.tif") as ds, rasterio.open(tmp_path / "ref.tif") as r:
        assert ds.shape == r.shape and ds.transform == r.transform and ds.crs == r.crs
        out = ds.read(1, masked=True)
    valid = ~out.mask & (out.data > 5) & (out.data < 250)
    # the resampled date lines up with the reference: strong correlation over the overlap
    assert np.corrcoef(out.data[valid], ref[valid])[0, 1] > 0.9
    assert "rmse_px" in (tmp_path / "out" / "coregistration.csv").read_text()


def test_unrelated_image_is_refused_without_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "ref.tif", _chip("ESP_016814_2125_RED-0035.jpg"))
    ok = cv2.warpAffine(_chip("ESP_016814_2125_RED-0035.jpg"), np.float32([[1, 0, 2.5], [0, 1, -1.5]]), (454, 454))
    _write(tmp_path / "ok.tif", ok)
    _write(tmp_path / "other.tif", _chip("ESP_049651_1050_RED-0043.jpg"))
    rc = main(["rsl", "coregister", "--reference", str(tmp_path / "ref.tif"), "--input", str(tmp_path / "ok.tif"),
               "--input", str(tmp_path / "other.tif"), "--output", str(tmp_path / "out")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "other.tif" in err and "\n" not in err
    assert (tmp_path / "out" / "ok.coreg.tif").exists()
    assert not (tmp_path / "out" / "other.coreg.tif").exists()
    rows = json.loads((tmp_path / "out" / "coregistration.json").read_text())
    assert rows[1]["error"] and rows[1]["output"] is None
    # and a rerun does not silently overwrite the first output
    rc = main(["rsl", "coregister", "--reference", str(tmp_path / "ref.tif"), "--input", str(tmp_path / "ok.tif"),
               "--output", str(tmp_path / "out")])
    assert rc == 2 and "--overwrite" in capsys.readouterr().err
