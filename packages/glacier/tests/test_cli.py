"""End to end through the real CLI: train on the bundled sample (real MLflow SQLite store),
predict a stacked scene, compare the real scene with a SYNTHETIC second date, and the bad
inputs of the issue: one line, exit 2, nothing written."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from glacier_testutil import RGB, crop, crop_scene, far_away_outlines, files_under, mars, stack_of

from mars_glacier.compare import GAIN, LOSS, NODATA, areas_per_glacier, change_map

OUTLINES = RGB.with_name("everest_sample_rgi60_outlines.geojson")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained one step on the bundled sample (WaveMix: the smallest of the nine). Used
    by its version: a one-step model may be degenerate, and then it is never the champion."""
    root = tmp_path_factory.mktemp("glacier-cli")
    res = mars("run", "glacier", "--set", "trainer.epochs=1", "--set", "trainer.max_steps_per_epoch=1",
               "--set", "trainer.batch_size=2", "--set", "trainer.progress=false",
               "--set", "model.name=glacier-wavemix",
               "--set", "tracking.sample_predictions=0",
               "--json", "run.json", cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    run = json.loads((root / "run.json").read_text())
    assert {"miou", "mcc", "f1", "balanced_accuracy", "iou_glacier", "iou_other"} <= set(run["metrics"]["val"])
    crop_scene(root / "scene", rows=(0, 160), cols=(0, 200))
    stack_of(root / "scene", root / "scene.tif")
    return root


def test_predict_writes_mask_probability_and_polygons_in_the_scene_crs(work: Path) -> None:
    res = mars("predict", "glacier", "--model", "models:/mars-glacier/1", "--input", "scene.tif",
               "--output", "pred.tif", cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    with rasterio.open(work / "scene.tif") as a, rasterio.open(work / "pred.tif") as m:
        assert m.crs == a.crs and m.transform == a.transform and m.shape == a.shape
        assert set(np.unique(m.read(1))) <= {0, 1}
    assert (work / "pred.prob.tif").exists()
    geo = json.loads((work / "pred.geojson").read_text())
    assert "32645" in json.dumps(geo.get("crs", "")) or "UTM zone 45N" in json.dumps(geo.get("crs", ""))
    assert all(f["properties"]["area_m2"] == 900.0 * f["properties"]["area_px"] for f in geo["features"])


def test_predict_refuses_a_three_band_scene(work: Path) -> None:
    res = mars("predict", "glacier", "--model", "models:/mars-glacier/1", "--input",
               str(next((work / "scene").glob("*_RGB_*"))), "--output", "rgb_only.tif", cwd=work)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "3 band" in res.stderr
    assert not list(work.glob("rgb_only*"))


def test_compare_with_a_synthetic_retreat(work: Path) -> None:
    res = mars("glacier", "synthetic", "--scene", "scene.tif", "--outlines", str(OUTLINES), "--output", "syn.tif",
               "--retreat-px", "4", cwd=work)
    assert res.returncode == 0, res.stderr
    with rasterio.open(work / "syn.tif") as ds:
        assert "SYNTHETIC" in ds.tags()["SYNTHETIC"]
    with rasterio.open(work / "syn.truth.tif") as ds:
        assert ds.read(1).sum() > 0
    res = mars("glacier", "compare", "--model", "models:/mars-glacier/1", "--date1", "scene",
               "--date2", "syn.tif", "--outlines", str(OUTLINES), "--output", "cmp", cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {"areas.csv", "change.tif", "change.geojson", "change.png", "summary.json", "date1.tif",
            "date2.tif"} <= files_under(work / "cmp")
    summary = json.loads((work / "cmp" / "summary.json").read_text())
    assert summary["date2"]["label"].startswith("SYNTHETIC")
    rows = list(csv.reader((work / "cmp" / "areas.csv").open()))
    assert "SYNTHETIC" in rows[1][0] and rows[2][:3] == ["RGIId", "Name", "area_km2_date1"]
    assert len(rows) - 3 == summary["glaciers"] > 0
    with rasterio.open(work / "cmp" / "change.tif") as ds:
        assert "SYNTHETIC" in ds.tags()["date2"]
    # The same output again is refused, and nothing changes
    before = files_under(work / "cmp")
    again = mars("glacier", "compare", "--model", "models:/mars-glacier/1", "--date1", "scene",
                 "--date2", "syn.tif", "--outlines", str(OUTLINES), "--output", "cmp", cwd=work)
    assert again.returncode == 2 and "already exists" in again.stderr and files_under(work / "cmp") == before


def test_compare_resamples_a_shifted_date_with_a_warning(work: Path) -> None:
    crop(work / "scene.tif", work / "shifted.tif", (0, 160), (0, 200), shift_px=2.5)
    res = mars("glacier", "compare", "--model", "models:/mars-glacier/1", "--date1", "scene.tif",
               "--date2", "shifted.tif", "--outlines", str(OUTLINES), "--output", "cmp_shift", cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resampled" in res.stderr
    assert json.loads((work / "cmp_shift" / "summary.json").read_text())["resampled_date2"] is True


def test_compare_refuses_dates_that_do_not_overlap(work: Path) -> None:
    crop(work / "scene.tif", work / "far.tif", (0, 160), (0, 200), shift_px=5000)
    res = mars("glacier", "compare", "--model", "models:/mars-glacier/1", "--date1", "scene.tif",
               "--date2", "far.tif", "--outlines", str(OUTLINES), "--output", "cmp_far", cwd=work)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "overlap" in res.stderr
    assert not (work / "cmp_far").exists() and not list(work.glob(".cmp_far*"))


@pytest.mark.parametrize("case", ["nir_grid", "outlines_far", "outlines_empty", "band_count"])
def test_bad_training_data_one_line_exit_2_nothing_written(work: Path, tmp_path: Path, case: str) -> None:
    data = tmp_path / "data"
    crop_scene(data, rows=(0, 256), cols=(0, 256))
    shutil.copy(OUTLINES, data / "outlines.geojson")
    if case == "nir_grid":
        crop(next(data.glob("*_B4_*")), next(data.glob("*_B4_*")), (0, 256), (0, 256), shift_px=3)
    elif case == "outlines_far":
        far_away_outlines(data / "outlines.geojson")
    elif case == "outlines_empty":
        (data / "outlines.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    else:
        stack_of(data, data / "scene.tif")
        for p in list(data.glob("*_x.tif")):
            p.unlink()
        crop(data / "scene.tif", data / "scene.tif", (0, 256), (0, 256), bands=[1, 2, 3])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    before = files_under(data)
    res = mars("run", "glacier", "--data", str(data), "--set", "trainer.epochs=1", cwd=run_dir)
    assert res.returncode == 2, res.stderr[-1500:]
    assert len(res.stderr.strip().splitlines()) == 1 and res.stderr.startswith("error:")
    assert files_under(run_dir) <= {"mlflow.db"} and files_under(data) == before


def test_change_map_and_areas_by_hand() -> None:
    m1 = np.array([[1, 1, 0], [1, 0, NODATA]], dtype=np.uint8)
    m2 = np.array([[1, 0, 1], [0, 0, 1]], dtype=np.uint8)
    ch = change_map(m1, m2)
    assert ch.tolist() == [[1, LOSS, GAIN], [LOSS, 0, NODATA]]
    ids = np.array([[1, 1, 2], [1, 2, 2]], dtype=np.int32)
    rows = areas_per_glacier(m1, m2, ids, np.array([900.0, 900.0]), [{"RGIId": "a"}, {"RGIId": "b"}])
    assert [(r.rgi_id, round(r.area1_km2 * 1e6), round(r.area2_km2 * 1e6)) for r in rows] == [
        ("a", 2700, 900), ("b", 0, 900)]
    assert rows[0].change_pct == pytest.approx(-200 / 3)


def test_evaluate_split_all_scores_every_pixel_of_another_folder(work: Path, tmp_path: Path) -> None:
    """How a withheld part is judged: another folder in the same layout, --split all."""
    other = tmp_path / "other"
    crop_scene(other, rows=(128, 384), cols=(256, 512), name="LE7_east")
    shutil.copy(OUTLINES, other / "outlines.geojson")
    res = mars("evaluate", "glacier", "--model", "models:/mars-glacier/1", "--data", str(other),
               "--split", "all", "--json", str(tmp_path / "eval.json"), cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((tmp_path / "eval.json").read_text())["metrics"]["all"]
    assert {"miou", "mcc", "f1", "balanced_accuracy", "iou_glacier", "iou_other"} <= set(metrics)
    assert -1.0 <= metrics["mcc"] <= 1.0 and 0.0 <= metrics["miou"] <= 1.0
