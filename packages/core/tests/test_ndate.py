"""Change detection over T = 3 dates on SYNTHETIC data: the engine trains a toy three-date
model (which takes ``times``), and ``predict_scene`` runs it over three GeoTIFFs."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import toy_dates_plugin
from affine import Affine

from mars_core import plugins
from mars_core.cli import main
from mars_core.config import load_task_config
from mars_core.data import InputContract, Normalisation
from mars_core.dates import days_since_j2000, parse_time, time_from_tags
from mars_core.engine import train
from mars_core.errors import MarsError
from mars_core.raster import predict_scene
from mars_core.tasks import TaskKind, date_keys, forward, input_keys_of, takes_times
from mars_core.tracking.model_io import load_model, save_model_dir, signature_for

MARS_WKT = (
    'PROJCS["Equirectangular Mars",GEOGCS["GCS_Mars_2000_Sphere",DATUM["Mars_2000_(Sphere)",'
    'SPHEROID["Mars_2000_Sphere_IAU_IAG",3396190,0]],PRIMEM["Reference_Meridian",0],'
    'UNIT["degree",0.0174532925199433]],PROJECTION["Equirectangular"],PARAMETER["standard_parallel_1",0],'
    'PARAMETER["central_meridian",0],PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)


@pytest.fixture
def dates_task():
    plugins.reset()
    toy_dates_plugin.install()
    toy_dates_plugin.PointwiseDates.seen_times.clear()
    try:
        yield toy_dates_plugin
    finally:
        toy_dates_plugin.uninstall()
        plugins.reset()


def _write(path: Path, data: np.ndarray, tags: dict[str, str]) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype="float32", crs=MARS_WKT, transform=Affine(2.0, 0, 100.0, 0, -2.0, 900.0)) as ds:
        ds.write(data[None])
        ds.update_tags(**tags)
    return path


def test_keys_and_contract_for_t_dates():
    assert date_keys(TaskKind.CHANGE_DETECTION, 4) == ("image1", "image2", "image3", "image4")
    assert TaskKind.CHANGE_DETECTION.input_keys == ("image1", "image2")  # T = 2 unchanged
    assert input_keys_of(TaskKind.CHANGE_DETECTION, {"image1": 0, "image2": 0, "image3": 0, "image5": 0}) == (
        "image1", "image2", "image3")
    norm = Normalisation(mean=[0.0], std=[1.0])
    pair = InputContract.model_validate({"kind": "change_detection", "bands": ["b"], "tile_size": 8,
                                         "normalisation": norm.model_dump()})
    assert pair.n_inputs == 2  # a stored contract without n_inputs stays a pair
    assert InputContract(kind=TaskKind.CHANGE_DETECTION, bands=["b"], tile_size=8, normalisation=norm,
                         n_inputs=5).n_inputs == 5
    with pytest.raises(ValueError):
        InputContract(kind=TaskKind.CHANGE_DETECTION, bands=["b"], tile_size=8, normalisation=norm, n_inputs=1)


def test_times_reach_only_models_that_take_them():
    class NoTimes(torch.nn.Module):
        def forward(self, image1, image2):
            return image1 - image2

    class Times(torch.nn.Module):
        def forward(self, image1, image2, *, times):
            return (image1 - image2) * 0 + times[:, 1].view(-1, 1, 1, 1)

    x = torch.zeros(2, 1, 2, 2)
    batch = {"image1": x, "image2": x + 1, "times": torch.tensor([[0.0, 5.0], [0.0, 7.0]])}
    assert not takes_times(NoTimes()) and takes_times(Times())
    assert torch.equal(forward(TaskKind.CHANGE_DETECTION, NoTimes(), batch), -torch.ones_like(x))
    out = forward(TaskKind.CHANGE_DETECTION, Times(), batch)
    assert out[0].unique().item() == 5.0 and out[1].unique().item() == 7.0
    no_times = forward(TaskKind.CHANGE_DETECTION, Times(), {"image1": x, "image2": x})
    assert torch.isnan(no_times).all()  # unknown times are NaN, never a made-up date


def test_time_parsing():
    assert parse_time("2000-01-01T12:00:00Z") == 0.0
    assert parse_time("2000-01-11") == pytest.approx(9.5)
    assert time_from_tags({"TIFFTAG_DATETIME": "2000:01:03 12:00:00"}) == pytest.approx(2.0)
    # an acquisition tag wins over the TIFF DateTime (file writing time)
    assert time_from_tags({"TIFFTAG_DATETIME": "2020:01:01 00:00:00", "acquisition_time": "2000-01-02T12:00Z"}) == 1.0
    assert math.isnan(time_from_tags({"TIFFTAG_DATETIME": "yesterday"}))
    with pytest.raises(MarsError, match="not a date"):
        parse_time("2021-13-45")


def test_three_dates_train_through_the_engine_and_predict_over_geotiffs(dates_task, tmp_path):
    cfg = load_task_config(dates_task.TASK_YAML, overrides=[f"trainer.checkpoint_dir={tmp_path / 'ckpt'}"])
    summary = train(cfg)
    model = summary.model
    seen = [t for t in dates_task.PointwiseDates.seen_times if t is not None]
    # every batch of training and evaluation passed [B, 3] times from the SYNTHETIC samples
    assert seen and len(seen) == len(dates_task.PointwiseDates.seen_times)
    assert all(t.ndim == 2 and t.shape[1] == 3 for t in seen)
    assert torch.equal(seen[0][0] - seen[0][0, 0], torch.tensor([0.0, 10.0, 20.0]))
    assert set(summary.metrics) >= {"val", "test"} and "miou" in summary.metrics["test"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert any(not torch.equal(v, toy_dates_plugin.PointwiseDates().state_dict()[k]) for k, v in before.items())

    rng = np.random.default_rng(5)
    h, w = 21, 37  # not a multiple of the tile: edge tiles are shifted back
    scenes = [rng.normal(0, 0.3, (h, w)).astype(np.float32) for _ in range(3)]
    scenes[2][5:12, 8:20] += 1.0
    tags = ["2021-03-01", "2021-04-01T06:00:00Z", "2021-05-01"]
    paths = [_write(tmp_path / f"d{k}.tif", s, {"ACQUISITION_TIME": t}) for k, (s, t) in
             enumerate(zip(scenes, tags, strict=True))]
    contract = summary.contract
    assert contract.n_inputs == 3
    with torch.no_grad():
        xs = [torch.from_numpy(s)[None, None] for s in scenes]
        expected = torch.sigmoid(model(*xs)).numpy()[0, 0]
    dates_task.PointwiseDates.seen_times.clear()
    result = predict_scene(model, contract, paths, tmp_path / "out.tif", tile=16, overlap=0.25, progress=False,
                           probability="float32", batch_size=3)
    with rasterio.open(result.probability) as ds:
        prob = ds.read(1)
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    want = torch.tensor([parse_time(t) for t in tags])
    assert dates_task.PointwiseDates.seen_times
    for t in dates_task.PointwiseDates.seen_times:
        assert t.shape[1] == 3 and torch.allclose(t[0], want)

    # times given explicitly win over the tags; a wrong count is one user error, nothing written
    dates_task.PointwiseDates.seen_times.clear()
    predict_scene(model, contract, paths, tmp_path / "t.tif", tile=16, progress=False,
                  times=["2022-01-01", None, 8000.0])
    got = dates_task.PointwiseDates.seen_times[0][0]
    assert got[0] == pytest.approx(days_since_j2000(datetime(2022, 1, 1)))
    assert got[1] == pytest.approx(want[1]) and got[2] == 8000.0
    with pytest.raises(MarsError, match="expects 3 input scene"):
        predict_scene(model, contract, paths[:2], tmp_path / "two.tif", tile=16, progress=False)
    assert not (tmp_path / "two.tif").exists()


def test_cli_takes_t_inputs_with_times_and_pyfunc_takes_t_keys(dates_task, tmp_path, capsys):
    cfg = load_task_config(dates_task.TASK_YAML, overrides=[f"trainer.checkpoint_dir={tmp_path / 'ckpt'}"])
    summary = train(cfg)
    model_dir = save_model_dir(summary.model, cfg, summary.contract, tmp_path / "model")
    rng = np.random.default_rng(1)
    paths = [_write(tmp_path / f"d{k}.tif", rng.normal(0, 0.3, (20, 24)).astype(np.float32), {}) for k in range(3)]
    args = ["predict", "toy-dates", "--model", str(model_dir), "--device", "cpu", "--tile", "16"]
    dates_task.PointwiseDates.seen_times.clear()
    assert main([*args, *(a for p in paths for a in ("--input", str(p))), "--output", str(tmp_path / "o.tif"),
                 "--time", "2020-01-01", "--time", "2020-02-01", "--time", "2020-03-01"]) == 0
    assert (tmp_path / "o.tif").exists() and (tmp_path / "o.geojson").exists()
    want = torch.tensor([parse_time(d) for d in ("2020-01-01", "2020-02-01", "2020-03-01")])
    assert dates_task.PointwiseDates.seen_times and torch.allclose(dates_task.PointwiseDates.seen_times[0][0], want)
    # without --time nor tags the model is told the dates are unknown (NaN), not given a made-up one
    dates_task.PointwiseDates.seen_times.clear()
    assert main([*args, *(a for p in paths for a in ("--input", str(p))), "--output", str(tmp_path / "n.tif")]) == 0
    assert torch.isnan(dates_task.PointwiseDates.seen_times[0]).all()
    for bad in (["--input", str(paths[0]), "--input", str(paths[1])],
                [*(a for p in paths for a in ("--input", str(p))), "--time", "2020-01-01"],
                [*(a for p in paths for a in ("--input", str(p))), "--time", "a", "--time", "b", "--time", "c"]):
        capsys.readouterr()
        assert main([*args, *bad, "--output", str(tmp_path / "bad.tif")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err
        assert not (tmp_path / "bad.tif").exists()

    loaded = load_model(str(model_dir))
    x = np.asarray(rng.normal(0, 0.3, (2, 1, 8, 8)), dtype=np.float32)
    dates_task.PointwiseDates.seen_times.clear()
    probs = loaded.predict({"image1": x, "image2": x, "image3": x + 1, "times": np.array([1.0, 2.0, 3.0])})
    assert probs.shape == (2, 1, 8, 8)
    assert torch.equal(dates_task.PointwiseDates.seen_times[0], torch.tensor([[1.0, 2.0, 3.0]] * 2))
    with pytest.raises(MarsError, match="image3"):
        loaded.predict({"image1": x, "image2": x})
    assert [s.name for s in signature_for(loaded.contract).inputs.inputs] == ["image1", "image2", "image3"]
