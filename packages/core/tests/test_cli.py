"""The mars-core CLI end to end, in-process, on the SYNTHETIC toy task.

Exercises the exit-code contract (0 / 2 / 1), the --json shape, MLflow tracking against
the embedded SQLite store, and predict's refusal to write anything for bad input.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from mars_core.cli import main

MARS_WKT = (
    'PROJCS["Oblique_Stereographic",GEOGCS["GCS_D_MARS",DATUM["MARS",SPHEROID["MARS",3396190,0]],'
    'PRIMEM["Reference Meridian",0],UNIT["degree",0.0174532925199433]],PROJECTION["Stereographic"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
FAST = ["--set", "trainer.epochs=2", "--set", "data.n_train=16"]


def _write_scene(path: Path, bands: int, height: int = 40, width: int = 52, nodata: float | None = None,
                 fill: float | None = None) -> Path:
    rng = np.random.default_rng(0)
    data = rng.normal(0, 0.3, size=(bands, height, width)).astype("float32")
    data[:, 10:20, 12:30] += 1.0
    if fill is not None:
        data[:] = fill
    profile = {"driver": "GTiff", "height": height, "width": width, "count": bands, "dtype": "float32",
               "crs": MARS_WKT, "transform": from_origin(1000.0, 2000.0, 0.25, 0.25), "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def _outputs(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith("out"))


def test_plugins_json_lists_builtins(capsys):
    assert main(["plugins", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    builtin = next(p for p in report if p["name"] == "mars_core.builtin")
    assert builtin["distribution"] == "mars-core"
    assert "bce" in builtin["registered"]["losses"]


def test_usage_and_input_errors_exit_2_with_one_line(toy, in_tmp, capsys):
    cases = [
        ["run"],
        ["run", "no-such-task"],
        ["run", "craters"],
        ["run", "toy", "--set", "trainer.lr=-1"],
        ["run", "toy", "--set", "model.depth=3"],
        ["run", "toy", "--config", "missing.yaml"],
        ["run", "toy", "--data", "does/not/exist"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, (argv, err)


def test_missing_task_package_is_named(toy, capsys):
    # A task that no installed package provides: the message names the usual distribution.
    assert main(["run", "craters"]) == 2
    assert "pip install mars-craters" in capsys.readouterr().err
    assert main(["run", "no-such-task"]) == 2
    assert "pip install mars-no-such-task" in capsys.readouterr().err


def test_run_without_tracking_writes_json(toy, in_tmp):
    out = in_tmp / "result.json"
    assert main(["run", "toy", *FAST, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"run_id", "model_uri", "metrics", "degenerate", "degenerate_reason",
                           "prediction_health"}
    assert isinstance(result["degenerate"], bool)
    assert set(result["prediction_health"]) == {"val", "test"}
    assert result["run_id"] is None  # tracking disabled in the toy defaults
    assert {"val", "test"} <= set(result["metrics"])
    assert 0.0 <= result["metrics"]["test"]["miou"] <= 1.0
    assert not (in_tmp / "mlflow.db").exists()


@pytest.mark.slow
def test_run_evaluate_predict_models_with_sqlite_tracking(toy, in_tmp, capsys):
    out = in_tmp / "run.json"
    assert main(["run", "toy", *FAST, "--set", "tracking.enabled=true", "--json", str(out)]) == 0
    run = json.loads(out.read_text())
    assert run["run_id"] and run["model_uri"]
    assert (in_tmp / "mlflow.db").exists()

    ev = in_tmp / "eval.json"
    assert main(["evaluate", "toy", "--model", "models:/mars-toy@champion", "--data", str(in_tmp),
                 "--split", "test", "--json", str(ev)]) == 0
    evaluated = json.loads(ev.read_text())
    assert evaluated["run_id"] is None
    # the champion is the run just made, evaluated on the same deterministic test split
    assert evaluated["metrics"]["test"]["miou"] == pytest.approx(run["metrics"]["test"]["miou"], abs=1e-6)

    assert main(["evaluate", "toy", "--model", "models:/mars-toy@champion", "--data", str(in_tmp),
                 "--split", "nope"]) == 2

    capsys.readouterr()
    assert main(["models", "toy"]) == 0
    assert "mars-toy" in capsys.readouterr().out

    scene = _write_scene(in_tmp / "scene.tif", bands=2)
    assert main(["predict", "toy", "--model", "models:/mars-toy@champion", "--input", str(scene),
                 "--output", str(in_tmp / "out.tif"), "--tile", "16", "--overlap", "0.25"]) == 0
    with rasterio.open(scene) as src, rasterio.open(in_tmp / "out.tif") as dst:
        assert dst.crs == src.crs and dst.transform == src.transform
        assert dst.shape == src.shape
    assert (in_tmp / "out.geojson").exists()
    # the default (channels_last) and --no-channels-last give the same probabilities
    assert main(["predict", "toy", "--model", "models:/mars-toy@champion", "--input", str(scene),
                 "--output", str(in_tmp / "nchw.tif"), "--tile", "16", "--overlap", "0.25",
                 "--no-channels-last", "--probability", "float32"]) == 0
    with rasterio.open(in_tmp / "out.prob.tif") as a, rasterio.open(in_tmp / "nchw.prob.tif") as b:
        assert (a.dtypes[0], b.dtypes[0]) == ("uint8", "float32")  # uint8 by default, float32 on request
        np.testing.assert_allclose(a.read(1) * a.scales[0], b.read(1), rtol=0, atol=0.5 / 254 + 1e-5)

    # --min-pixels leaves small components out of the GeoJSON (the toy model sets no default)
    sizes = sorted(f["properties"]["area_px"] for f in json.loads((in_tmp / "out.geojson").read_text())["features"])
    assert len(set(sizes)) >= 2, sizes  # precondition: components of different sizes to filter
    cut = sizes[len(sizes) // 2] + 1 if sizes[len(sizes) // 2] < sizes[-1] else sizes[-1]
    assert main(["predict", "toy", "--model", "models:/mars-toy@champion", "--input", str(scene),
                 "--output", str(in_tmp / "big.tif"), "--tile", "16", "--overlap", "0.25",
                 "--min-pixels", str(cut)]) == 0
    kept = [f["properties"]["area_px"] for f in json.loads((in_tmp / "big.geojson").read_text())["features"]]
    assert sorted(kept) == [n for n in sizes if n >= cut] and len(kept) < len(sizes)

    # existing output is never overwritten silently
    assert main(["predict", "toy", "--model", "models:/mars-toy@champion", "--input", str(scene),
                 "--output", str(in_tmp / "out.tif"), "--tile", "16"]) == 2

    # bad inputs: exit 2 and nothing written
    bad_cases = {
        "not-a-raster": (in_tmp / "notes.tif", None),
        "wrong-bands": (_write_scene(in_tmp / "three.tif", bands=3), None),
        "all-nodata": (_write_scene(in_tmp / "empty.tif", bands=2, nodata=-9999.0, fill=-9999.0), None),
    }
    (in_tmp / "notes.tif").write_text("this is not a GeoTIFF")
    for name, (path, _) in bad_cases.items():
        target = in_tmp / f"out-{name}.tif"
        code = main(["predict", "toy", "--model", "models:/mars-toy@champion", "--input", str(path),
                     "--output", str(target), "--tile", "16"])
        assert code == 2, name
        assert not any(p.name.startswith(f"out-{name}") or ".partial" in p.name for p in in_tmp.iterdir()), name

    # a model trained for another task is refused
    assert main(["evaluate", "landslide", "--model", "models:/mars-toy@champion", "--data", str(in_tmp)]) == 2


def test_each_run_keeps_its_own_checkpoints_and_resume_last_continues_newest(toy, in_tmp):
    assert main(["run", "toy", *FAST]) == 0
    assert main(["run", "toy", *FAST]) == 0
    runs = sorted((in_tmp / "checkpoints" / "toy").iterdir())
    assert len(runs) == 2 and all((r / "last.pt").is_file() and (r / "best.pt").is_file() for r in runs)
    newest = max(runs, key=lambda r: (r / "last.pt").stat().st_mtime)
    before = (runs[0] / "last.pt").read_bytes()
    out = in_tmp / "resumed.json"
    assert main(["run", "toy", "--set", "trainer.epochs=3", "--set", "data.n_train=16",
                 "--set", "trainer.resume=last", "--json", str(out)]) == 0
    assert len(list((in_tmp / "checkpoints" / "toy").iterdir())) == 2  # no new directory
    import torch

    assert torch.load(newest / "last.pt", weights_only=True)["epoch"] == 3
    if newest != runs[0]:
        assert (runs[0] / "last.pt").read_bytes() == before  # the other run is untouched


def test_resume_last_without_checkpoints_is_a_clear_error(toy, in_tmp, capsys):
    assert main(["run", "toy", "--set", "trainer.resume=last"]) == 2
    assert "no checkpoint of task 'toy'" in capsys.readouterr().err
