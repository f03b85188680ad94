"""Classification over whole scenes on SYNTHETIC GeoTIFFs written in each test: chunk
footprints against the transform, probabilities by hand, the task's filter and summariser,
strip-at-a-time reading, atomic outputs, the CLI, and num_classes from the data source."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import toy_patch_plugin as tp
from affine import Affine

from mars_core import plugins
from mars_core.cli import main
from mars_core.config import load_task_config
from mars_core.engine import train
from mars_core.errors import MarsError
from mars_core.raster import classify as classify_module
from mars_core.raster.classify import chunk_starts, classify_scene, default_summary
from mars_core.tracking.model_io import save_model_dir

MARS_WKT = (
    'PROJCS["Equirectangular Mars",GEOGCS["GCS_Mars_2000_Sphere",DATUM["Mars_2000_(Sphere)",'
    'SPHEROID["Mars_2000_Sphere_IAU_IAG",3396190,0]],PRIMEM["Reference_Meridian",0],'
    'UNIT["degree",0.0174532925199433]],PROJECTION["Equirectangular"],PARAMETER["standard_parallel_1",0],'
    'PARAMETER["central_meridian",0],PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
TRANSFORM = Affine(0.5, 0.0, -2000.0, 0.0, -0.5, 3000.0)
W_BRIGHT, B_BRIGHT = 2.0, -1.0  # logit(bright) - logit(plain) = 2 * mean - 1


@pytest.fixture
def patch_task():
    plugins.reset()
    tp.install()
    tp.Summaries.calls.clear()
    try:
        yield tp
    finally:
        tp.uninstall()
        plugins.reset()


def known_model() -> tp.MeanClassifier:
    m = tp.MeanClassifier(1, 2)
    with torch.no_grad():
        m.head.weight.copy_(torch.tensor([[0.0], [W_BRIGHT]]))
        m.head.bias.copy_(torch.tensor([0.0, B_BRIGHT]))
    return m


def write_scene(path: Path, data: np.ndarray, *, crs: str | None = MARS_WKT, transform: Affine = TRANSFORM,
                nodata: float | None = None) -> Path:
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as ds:
        ds.write(data)
    return path


def block_scene(values: np.ndarray, chunk: int) -> np.ndarray:
    """Each chunk-sized block constant (SYNTHETIC): its resampled mean is exactly its value."""
    return np.kron(values, np.ones((chunk, chunk))).astype(np.float32)


def p_bright(raw: float) -> float:
    z = W_BRIGHT * (raw - tp.MEAN) / tp.STD + B_BRIGHT
    return 1.0 / (1.0 + math.exp(-z))


def test_chunk_starts_cover_the_scene_with_the_last_chunk_flush():
    assert chunk_starts(40, 16, 0.0) == (0, 16, 24)
    assert chunk_starts(48, 16, 0.0) == (0, 16, 32)
    assert chunk_starts(40, 16, 0.5) == (0, 8, 16, 24)
    assert chunk_starts(10, 16, 0.0) == (0,)


def test_footprints_probabilities_filter_and_summary(patch_task, tmp_path):
    chunk = 16
    values = np.array([[100.0, 130.0, 90.0], [0.0, 120.0, 100.0]])  # block (1,0) is black: filtered
    scene = write_scene(tmp_path / "scene.tif", block_scene(values, chunk))
    out = tmp_path / "out"
    result = classify_scene(known_model(), patch_task.PatchSource(size=8).input_contract(), scene, out,
                            chunk=chunk, input_size=8, chunk_filter=patch_task.dark_centre,
                            summariser=patch_task.verdict, summary_params={"threshold": 0.5, "min_bright": 2})
    assert result.n_chunks == 6 and result.n_skipped == 1 and result.n_classified == 5
    gj = json.loads(result.geojson.read_text())
    assert "MARS" in gj["crs"]["properties"]["name"].upper()
    feats = {(f["properties"]["row"], f["properties"]["col"]): f for f in gj["features"]}
    for (r, c), f in feats.items():
        props = f["properties"]
        x0, y0 = c * chunk, r * chunk
        assert (props["x"], props["y"], props["width"], props["height"]) == (x0, y0, chunk, chunk)
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == [TRANSFORM.c + 0.5 * x0, TRANSFORM.f - 0.5 * y0]
        assert ring[2] == [TRANSFORM.c + 0.5 * (x0 + chunk), TRANSFORM.f - 0.5 * (y0 + chunk)]
        if (r, c) == (1, 0):
            assert props["skipped"] and props["reason"] == "black centre" and props["p"] is None
        else:
            assert not props["skipped"]
            assert props["p"] == pytest.approx(p_bright(values[r, c]), abs=1e-5)
            assert props["p_bright"] + props["p_plain"] == pytest.approx(1.0)
            assert props["class"] == ("bright" if props["p"] >= 0.5 else "plain")
    rows = list(csv.DictReader(result.csv.open()))
    assert len(rows) == 6 and {r["reason"] for r in rows} == {"", "black centre"}
    summary = json.loads(result.summary.read_text())
    n_bright = sum(p_bright(v) >= 0.5 for v in values.ravel() if v > 0)
    assert summary["summary"] == {"bright_chunks": n_bright, "verdict": "bright" if n_bright >= 2 else "plain"}
    assert summary["skip_reasons"] == {"black centre": 1}
    assert patch_task.Summaries.calls == [(6, {"threshold": 0.5, "min_bright": 2})]


def test_resampling_is_antialiased_and_default_summary(patch_task, tmp_path):
    # a 32-px chunk of fine stripes 100/140 shrunk to 8 px: antialiasing keeps the mean (120);
    # plain bilinear would sample a few stripes only
    stripes = np.where(np.arange(32) % 2 == 0, 100.0, 140.0).astype(np.float32)
    scene = write_scene(tmp_path / "s.tif", np.tile(stripes, (32, 1)))
    res = classify_scene(known_model(), patch_task.PatchSource(size=8).input_contract(), scene,
                         tmp_path / "o", chunk=32, input_size=8)
    rec = json.loads(res.geojson.read_text())["features"][0]["properties"]
    assert rec["p"] == pytest.approx(p_bright(120.0), abs=1e-4)
    summary = json.loads(res.summary.read_text())["summary"]
    assert summary == default_summary([rec], tp.CLASSES, {})
    assert summary["counts"] == {"plain": 0, "bright": 1}


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_nodata_chunks_skipped_and_scene_without_crs(patch_task, tmp_path):
    data = block_scene(np.array([[-9999.0, 120.0]]), 8)
    scene = write_scene(tmp_path / "nocrs.tif", data, crs=None, transform=Affine.identity(), nodata=-9999.0)
    res = classify_scene(known_model(), patch_task.PatchSource(size=8).input_contract(), scene, tmp_path / "o",
                         chunk=8)
    gj = json.loads(res.geojson.read_text())
    assert "crs" not in gj
    a, b = (f["properties"] for f in gj["features"])
    assert a["skipped"] and a["reason"] == "no valid pixels" and a["valid_fraction"] == 0.0
    assert not b["skipped"] and gj["features"][1]["geometry"]["coordinates"][0][:3] == [[8, 0], [16, 0], [16, 8]]


class RecordingReader:
    """Wraps a rasterio dataset and records the windows it is asked to read."""

    def __init__(self, ds, log):
        self._ds, self._log = ds, log

    def __getattr__(self, name):
        return getattr(self._ds, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._ds.__exit__(*exc)

    def read(self, *args, window=None, **kw):
        self._log.append(window)
        return self._ds.read(*args, window=window, **kw)


def test_reads_one_strip_of_chunk_rows_at_a_time(patch_task, tmp_path, monkeypatch):
    h, w, chunk = 100, 300, 16
    scene = write_scene(tmp_path / "long.tif", np.full((h, w), 110.0, np.float32))
    log: list = []
    real_open = rasterio.open
    monkeypatch.setattr(classify_module.rasterio, "open",
                        lambda p, *a, **k: RecordingReader(real_open(p, *a, **k), log))
    res = classify_scene(known_model(), patch_task.PatchSource(size=8).input_contract(), scene, tmp_path / "o",
                         chunk=chunk, input_size=8, batch_size=4)
    assert res.n_chunks == len(chunk_starts(h, chunk, 0)) * len(chunk_starts(w, chunk, 0))
    assert len(log) == len(chunk_starts(h, chunk, 0))  # one read per chunk row
    assert all(win is not None and win.height <= chunk and win.width == w for win in log)


def test_outputs_are_atomic_and_never_overwritten(patch_task, tmp_path):
    scene = write_scene(tmp_path / "s.tif", block_scene(np.array([[110.0, 120.0]]), 8))
    contract = patch_task.PatchSource(size=8).input_contract()
    out = tmp_path / "o"

    class Boom(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("model broke")

    with pytest.raises(RuntimeError, match="model broke"):
        classify_scene(Boom(), contract, scene, out, chunk=8)
    assert not out.exists()  # nothing created, not even the directory
    classify_scene(known_model(), contract, scene, out, chunk=8)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["chunks.csv", "chunks.geojson", "summary.json"]
    with pytest.raises(MarsError, match="already exists"):
        classify_scene(known_model(), contract, scene, out, chunk=4)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    classify_scene(known_model(), contract, scene, out, chunk=4, overwrite=True)
    assert json.loads((out / "summary.json").read_text())["n_chunks"] == 8
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporaries left


def _trained_model_dir(task, tmp_path: Path) -> Path:
    cfg = load_task_config(task.TASK_YAML, overrides=[f"trainer.checkpoint_dir={tmp_path / 'ckpt'}"])
    summary = train(cfg)
    assert summary.metrics["test"]["balanced_accuracy"] > 0.9  # separable SYNTHETIC classes
    return save_model_dir(summary.model, cfg, summary.contract, tmp_path / "model")


def test_cli_routes_classification_and_refuses_bad_input(patch_task, tmp_path, capsys):
    model = _trained_model_dir(patch_task, tmp_path)
    scene = write_scene(tmp_path / "s.tif", block_scene(np.array([[100.0, 135.0, 0.0], [140.0, 95.0, 130.0]]), 16))
    out = tmp_path / "out"
    assert main(["predict", "toy-patch", "--model", str(model), "--input", str(scene), "--output", str(out),
                 "--device", "cpu", "--set", "predict.summary.min_bright=3"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # chunk 16 / input 8 from the stored predict section; --set reached the summariser
    assert summary["settings"]["chunk"] == 16 and summary["settings"]["input_size"] == 8
    assert summary["settings"]["summary"] == {"threshold": 0.5, "min_bright": 3}
    assert summary["n_skipped"] == 1 and summary["skip_reasons"] == {"black centre": 1}
    assert summary["summary"]["bright_chunks"] == 3 and summary["summary"]["verdict"] == "bright"
    assert "chunks (GeoJSON)" in capsys.readouterr().out

    bad = {
        "two-inputs": ["--input", str(scene), "--input", str(scene), "--output", str(tmp_path / "a")],
        "bands": ["--input", str(write_scene(tmp_path / "two.tif", np.zeros((2, 8, 8), np.float32))),
                  "--output", str(tmp_path / "b")],
        "set-key": ["--input", str(scene), "--output", str(tmp_path / "c"), "--set", "trainer.lr=1"],
        "set-value": ["--input", str(scene), "--output", str(tmp_path / "d"), "--set", "predict.chunk=-3"],
        "exists": ["--input", str(scene), "--output", str(out)],
        "time": ["--input", str(scene), "--output", str(tmp_path / "e"), "--time", "2020-01-01"],
    }
    for name, args in bad.items():
        capsys.readouterr()
        assert main(["predict", "toy-patch", "--model", str(model), "--device", "cpu", *args]) == 2, name
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, (name, err)
        assert name == "exists" or not Path(args[-1] if args[-2] == "--output" else args[3]).exists(), name


def test_num_classes_comes_from_the_data_source_and_a_mismatch_is_one_line(patch_task, tmp_path, capsys,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    three = ["plain", "bright", "speckled"]
    monkeypatch.setattr(tp, "CLASSES", three)
    cfg = load_task_config(patch_task.TASK_YAML, overrides=["trainer.epochs=1", f"trainer.checkpoint_dir={tmp_path}"])
    from mars_core.engine import build_components

    comps = build_components(cfg)
    assert comps.model.head.out_features == 3  # filled from len(contract.classes)
    assert comps.metrics[0].build().num_classes == 3
    capsys.readouterr()
    code = main(["run", "toy-patch", "--set", "model.num_classes=2", "--set", f"trainer.checkpoint_dir={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "returns (2, 2)" in err and "3 classes" in err and "Traceback" not in err


def test_filter_fields_and_in_place_repair_reach_the_outputs(patch_task, tmp_path):
    # SYNTHETIC: chunk (0, 1) holds one pixel at 1e4 that the filter repairs to 100 in place
    # and reports as a field; the model (linear in the mean) must see the repaired value.
    chunk = 8
    values = np.full((2 * chunk, 2 * chunk), 100.0, dtype=np.float32)
    values[3, chunk + 2] = 1e4
    scene = write_scene(tmp_path / "hot.tif", values)

    def repair(raw, valid, params):
        hot = raw[0] > 1000
        if not hot.any():
            return None
        raw[0][hot] = 100.0
        return {"skip": None, "n_fixed": int(hot.sum())}

    contract = tp.PatchSource(size=chunk).input_contract()
    classify_scene(known_model(), contract, scene, tmp_path / "o", chunk=chunk, input_size=chunk,
                   chunk_filter=repair)
    rows = list(csv.DictReader((tmp_path / "o" / "chunks.csv").open()))
    fixed = {(int(r["row"]), int(r["col"])): r["n_fixed"] for r in rows}
    assert fixed == {(0, 0): "", (0, 1): "1", (1, 0): "", (1, 1): ""}
    p = {float(r["p"]) for r in rows}
    assert len(p) == 1  # the hot chunk got exactly the probability of its clean neighbours
    feats = json.loads((tmp_path / "o" / "chunks.geojson").read_text())["features"]
    assert [f["properties"].get("n_fixed") for f in feats] == [None, 1, None, None]

    def clash(raw, valid, params):
        return {"skip": None, "p": 1.0}

    with pytest.raises(MarsError, match="fields that the core writes"):
        classify_scene(known_model(), contract, scene, tmp_path / "c", chunk=chunk, chunk_filter=clash)
    assert not (tmp_path / "c").exists()
