"""SYNTHETIC generator properties, the CLI commands (synth, associate) and the task config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from typer.testing import CliRunner

from mars_core import plugins
from mars_core.config import load_task_config
from mars_icefrag.cli import app
from mars_icefrag.synthetic import MARS_STEREO_WKT, generate_pair


def test_generator_properties() -> None:
    p = generate_pair(size=256, seed=3)
    assert p.t1.dtype == np.uint16 and p.t2.dtype == np.uint16
    assert 0 < p.mask.mean() < 0.05  # non-trivial but sparse change
    assert p.shadow_change.sum() > 0  # shadows changed without detachment ...
    assert not (p.shadow_change & (p.mask > 0)).any()  # ... and are not labelled
    assert abs(float(p.t1.mean()) - float(p.t2.mean())) > 0 or p.meta["t2_gain"] != 1
    assert max(abs(s) for s in p.meta["t2_shift_px"]) > 0


def test_synth_command_writes_labelled_geotiffs(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["synth", "--out", str(tmp_path), "--scenes", "2", "--size", "128", "--seed", "1"])
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "t1").glob("*.tif"))
    assert len(files) == 2 and len(list((tmp_path / "mask").glob("*.tif"))) == 2
    with rasterio.open(files[0]) as ds:
        assert ds.dtypes[0] == "uint16"
        assert ds.res == (0.25, 0.25)
        assert ds.crs == CRS.from_wkt(MARS_STEREO_WKT)
        assert "MARS" in ds.crs.to_wkt() and "3396190" in ds.crs.to_wkt()
        assert ds.tags()["SYNTHETIC"] == "true" and "SYNTHETIC" in ds.descriptions[0]
    assert json.loads((tmp_path / "SYNTHETIC.json").read_text())["scenes"][0]["synthetic"] is True


def _fc(polys: list[list[tuple[float, float]]]) -> dict:
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [p + [p[0]]]}}
        for p in polys]}


def _sq(x: float, y: float, s: float = 1.0) -> list[tuple[float, float]]:
    return [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]


def test_associate_counts_and_png(tmp_path: Path) -> None:
    frags = [_sq(0, 0), _sq(10, 0), _sq(20, 0)]
    shadows = [_sq(0, -1), _sq(0.2, -0.8), _sq(10, -3), _sq(40, 40)]  # two touch frag 0; one 2 m from frag 1
    (tmp_path / "f.geojson").write_text(json.dumps(_fc(frags)))
    (tmp_path / "s.geojson").write_text(json.dumps(_fc(shadows)))
    png = tmp_path / "map.png"
    args = ["associate", "--fragments", str(tmp_path / "f.geojson"), "--shadows", str(tmp_path / "s.geojson"),
            "--out", str(png)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    counts = json.loads(png.with_suffix(".json").read_text())
    assert (counts["fragments_with_shadow"], counts["fragments_alone"], counts["shadows_alone"]) == (1, 2, 2)
    assert png.stat().st_size > 1000
    res = CliRunner().invoke(app, [*args, "--max-distance", "2.5"])
    counts = json.loads(png.with_suffix(".json").read_text())
    assert (counts["fragments_with_shadow"], counts["fragments_alone"], counts["shadows_alone"]) == (2, 1, 1)


def test_associate_bad_input_is_a_clean_error(tmp_path: Path) -> None:
    (tmp_path / "f.geojson").write_text("not json")
    res = CliRunner().invoke(app, ["associate", "--fragments", str(tmp_path / "f.geojson"),
                                   "--shadows", str(tmp_path / "f.geojson")])
    assert res.exit_code == 2 and "not valid JSON" in res.output


def test_plugin_registers_everything_and_config_resolves() -> None:
    plugins.reset()
    reg = plugins.get_registries()
    for name in ["siamese-resnet50-aam", "siamese-resnet50", "fc-ef", "fc-siam-conc", "fc-siam-diff", "bit"]:
        assert name in reg.models
    assert "icefrag-pairs" in reg.datasources and "event" in reg.metrics
    assert {"icefrag-loss", "weighted-bce"} <= set(reg.losses.names())
    assert "icefrag" in reg.commands
    spec = reg.task("icefrag")
    cfg = load_task_config(spec.default_config)
    assert cfg.model.name == "siamese-resnet50-aam" and cfg.loss.name == "icefrag-loss"
    assert cfg.trainer.lr == 1e-4 and cfg.trainer.scheduler.gamma == 0.95 and cfg.trainer.monitor == "val/loss"
    src = reg.datasources.get("icefrag-pairs")(**{"root": None, **cfg.data.params})
    assert src.input_contract().n_inputs == 2
