"""``mars-core predict icepatch`` on scenes tiled from REAL sample chips (GeoTIFF and JPEG
2000, 8- and 16-bit, RDR null 0), with SYNTHETIC hot pixels and black wedges added."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from icepatch_testutil import copy_sample, model_dir, tiled_scene, write_scene

from mars_core.cli import main
from mars_icepatch.hotpixels import inject_hot_pixels


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return model_dir(tmp_path_factory.mktemp("m"))


def _predict(model, scene, out, *extra):
    return main(["predict", "icepatch", "--model", str(model), "--input", str(scene), "--output", str(out),
                 "--device", "cpu", *extra])


def test_chunks_black_centre_hot_pixels_and_verdict(model, tmp_path):
    img = tiled_scene(2, 3)  # 454 x 681, chunks of 227: a 2 x 3 grid
    img[227 + 100:227 + 130, 227 + 100:227 + 130] = 0   # black (null) around the centre of chunk (1, 1)
    hot = img.copy()
    hot[:227, :227] = inject_hot_pixels(img[:227, :227], 20, np.random.default_rng(0))
    clean_dir, hot_dir = tmp_path / "clean", tmp_path / "hot"
    assert _predict(model, write_scene(tmp_path / "c.tif", img), clean_dir) == 0
    assert _predict(model, write_scene(tmp_path / "h.tif", hot), hot_dir) == 0
    rows = {k: list(csv.DictReader((d / "chunks.csv").open())) for k, d in (("c", clean_dir), ("h", hot_dir))}
    by = {k: {(int(r["row"]), int(r["col"])): r for r in v} for k, v in rows.items()}
    assert len(by["c"]) == 6 and by["c"][(1, 1)]["reason"] == "black centre"
    assert int(by["h"][(0, 0)]["hot_pixels"]) >= 19 and int(by["c"][(0, 0)]["hot_pixels"]) == 0
    r, c = map(int, by["h"][(0, 0)]["hot_positions"].split(";")[0].split(":"))
    assert hot[r, c] == 255 and img[r, c] != 255
    for key, rec in by["c"].items():  # the hot chunk's probability did not move
        if rec["p"]:
            assert abs(float(by["h"][key]["p"]) - float(rec["p"])) < 0.01
    summary = json.loads((hot_dir / "summary.json").read_text())
    assert summary["summary"]["verdict"] in ("good", "hard", "bad")
    assert summary["summary"]["n_chunks"] == 5 and summary["summary"]["hot_pixels"] >= 19
    assert summary["settings"]["chunk"] == 227 and summary["settings"]["input_size"] == 64
    feats = json.loads((hot_dir / "chunks.geojson").read_text())["features"]
    assert len(feats) == 6 and feats[0]["properties"]["hot_pixels"] >= 19


def test_overrides_reach_filter_and_summary(model, tmp_path):
    img = tiled_scene(1, 2)
    out = tmp_path / "o"
    assert _predict(model, write_scene(tmp_path / "s.tif", img), out, "--set", "predict.summary.icy_threshold=0.0",
                    "--set", "predict.filter.hot_pixels=false", "--chunk-overlap", "0.5") == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["summary"]["icy_chunks"] == s["summary"]["n_chunks"] == 3  # every p >= 0; 3 chunks with overlap
    assert "hot_pixels" not in next(csv.DictReader((out / "chunks.csv").open()))


def test_jpeg2000_16bit_rdr(model, tmp_path):
    assert "JP2OpenJPEG" in rasterio.drivers.raster_driver_extensions().values()
    img8 = tiled_scene(1, 2)
    img16 = (img8.astype(np.uint16) * 4 + 1).astype(np.uint16)  # 10-bit DN, null 0 kept out
    img16[:, :20] = 0  # a null edge
    out8, out16 = tmp_path / "o8", tmp_path / "o16"
    assert _predict(model, write_scene(tmp_path / "s8.tif", img8), out8) == 0
    assert _predict(model, write_scene(tmp_path / "s16.jp2", img16, driver="JP2OpenJPEG"), out16) == 0
    p8 = [float(r["p"]) for r in csv.DictReader((out8 / "chunks.csv").open())]
    p16 = [float(r["p"]) for r in csv.DictReader((out16 / "chunks.csv").open())]
    # the robust stretch makes an 8-bit and a 16-bit product of one scene alike (the null edge aside)
    assert np.allclose(p8, p16, atol=0.05), (p8, p16)


def test_eval_time_model_settings_at_predict(model, tmp_path, capsys):
    """--set model.tta_scales=[1.0] on a stored four-scale model gives what the same weights
    saved with one scale give; a setting that changes the weights is refused in one line."""
    scene = write_scene(tmp_path / "s.tif", tiled_scene(1, 2))
    one = model_dir(tmp_path, overrides=["model.tta_scales=[1.0]"], name="one")  # same seed: same weights
    runs = {"default": (model, []), "set": (model, ["--set", "model.tta_scales=[1.0]"]), "stored": (one, [])}
    p = {}
    for name, (m, extra) in runs.items():
        assert _predict(m, scene, tmp_path / name, *extra) == 0
        p[name] = [float(r["p"]) for r in csv.DictReader((tmp_path / name / "chunks.csv").open())]
    assert p["set"] == p["stored"] and p["set"] != p["default"]
    capsys.readouterr()
    for bad, why in (("model.widths=[8]", "changes the network's weights"), ("model.name=resnet18-gray", "cannot"),
                     ("model.tta_scales=[9.0]", "tta_scales"), ("trainer.epochs=1", "predict.KEY=VALUE or model")):
        assert _predict(model, scene, tmp_path / "bad", "--set", bad) == 2
        err = capsys.readouterr().err.strip()
        assert why in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()


def test_eval_time_model_settings_at_verdicts_and_evaluate(model, tmp_path, capsys):
    """verdicts and evaluate take the same --set model.KEY=VALUE: one scale on the four-scale
    model gives what the same weights stored with one scale give; other keys are refused."""
    data = copy_sample(tmp_path / "chips")  # all 48: both classes, so AUROC tells the p apart
    one = model_dir(tmp_path, overrides=["model.tta_scales=[1.0]"], name="one")
    p, metrics = {}, {}
    for name, m, extra in (("set", model, ["--set", "model.tta_scales=[1.0]"]), ("stored", one, []),
                           ("default", model, [])):
        assert main(["icepatch", "verdicts", "--model", str(m), "--data", str(data),
                     "--out", str(tmp_path / name), *extra]) == 0
        p[name] = [r["p"] for r in csv.DictReader((tmp_path / name / "chips.csv").open())]
        assert main(["evaluate", "icepatch", "--model", str(m), "--data", str(data), "--split", "all",
                     "--json", str(tmp_path / f"{name}.json"), *extra]) == 0
        metrics[name] = json.loads((tmp_path / f"{name}.json").read_text())["metrics"]["all"]
    assert p["set"] == p["stored"] and p["set"] != p["default"]
    assert metrics["set"] == metrics["stored"] and metrics["set"] != metrics["default"]
    capsys.readouterr()
    for command, extra in ((["icepatch", "verdicts"], ["--out", str(tmp_path / "bad")]),
                           (["evaluate", "icepatch"], ["--json", str(tmp_path / "bad")])):
        for bad, why in (("predict.chunk=512", "model.KEY=VALUE only"), ("model.widths=[8]", "changes the network")):
            assert main([*command, "--model", str(model), "--data", str(data), *extra, "--set", bad]) == 2
            err = capsys.readouterr().err.strip()
            assert why in err and len(err.splitlines()) == 1, err
            assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("case", ["rgb", "all-black"])
def test_bad_scenes_are_one_line_and_write_nothing(model, tmp_path, capsys, case):
    img = tiled_scene(1, 2)
    data = np.stack([img, img, img]) if case == "rgb" else np.zeros_like(img)
    out = tmp_path / "out"
    assert _predict(model, write_scene(tmp_path / "bad.tif", data), out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert not out.exists()
