"""``model.name=ensemble`` end to end through the real CLI on the bundled sample: trained,
logged and registered as ONE model in a real MLflow SQLite store, then loaded back from the
registry by ``evaluate`` (published test-partition names) and ``predict`` (a GeoTIFF)."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
import tifffile
from rasterio.transform import from_origin

MEMBERS = "[{name: pspnet, encoder_depth: 3}, {name: pspnet, encoder_depth: 3}]"


def mars(*args: str, cwd: Path) -> SimpleNamespace:
    """``mars-core ARGS`` in this process with only this package's plugin and a store in ``cwd``."""
    from mars_core import plugins
    from mars_core.cli import main

    old_cwd, old_env = os.getcwd(), dict(os.environ)
    plugins.reset()
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({"MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "MARS_CORE_PLUGINS": "landslide"})
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        plugins.reset()
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landslide-ensemble")
    res = mars("run", "landslide", "--set", "model.name=ensemble", "--set", f"model.members={MEMBERS}",
               "--set", "trainer.epochs=1", "--set", "trainer.max_steps_per_epoch=1",
               "--set", "trainer.batch_size=2", "--set", "trainer.progress=false",
               "--set", "tracking.sample_predictions=0", "--json", "run.json", cwd=root)
    assert res.returncode == 0, res.stderr[-2000:]
    return root


def test_run_logs_one_model_holding_both_members(work: Path) -> None:
    run = json.loads((work / "run.json").read_text())
    assert 0.0 <= run["metrics"]["val"]["miou"] <= 1.0
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    versions = mlflow.MlflowClient().search_model_versions("name='mars-landslide'")
    assert len(versions) == 1  # one registered model for the whole ensemble


def test_evaluate_loads_the_ensemble_from_the_registry(work: Path) -> None:
    rng = np.random.default_rng(0)
    data = work / "mmls"
    for r, c in ((30, 1), (30, 2)):  # the published test names: ImageT_/MaskT_
        for kind, arr in (("images/ImageT", rng.random((128, 128, 7), dtype=np.float32)),
                          ("masks/MaskT", (rng.random((128, 128)) > 0.5).astype(np.float32))):
            path = data / "test_partition" / f"{kind}_patch_{r}_{c}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(path, arr)
    res = mars("evaluate", "landslide", "--model", "models:/mars-landslide@champion", "--data", str(data),
               "--split", "test", "--json", "eval.json", cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    metrics = json.loads((work / "eval.json").read_text())
    test = metrics["metrics"]["test"]
    assert 0.0 <= test["miou"] <= 1.0 and test["precision"] + test["recall"] > 0
    assert sum(metrics["prediction_health"]["test"]["reference_classes"].values()) == 2 * 128 * 128


def test_predict_with_the_registered_ensemble(work: Path) -> None:
    from mars_landslide.sample import load_sample

    images, _, _ = load_sample("val")
    scene = work / "scene.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=128, height=128, count=7, dtype="float32",
                       crs=None, transform=from_origin(0, 128 * 232, 232, 232)) as ds:
        ds.write(images[0])
    res = mars("predict", "landslide", "--model", "models:/mars-landslide@champion", "--input", str(scene),
               "--output", "pred.tif", cwd=work)
    assert res.returncode == 0, res.stderr[-2000:]
    with rasterio.open(work / "pred.tif") as m:
        assert m.shape == (128, 128) and set(np.unique(m.read(1))) <= {0, 1}
