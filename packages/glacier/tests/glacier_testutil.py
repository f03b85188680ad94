"""Helpers for the glacier tests: crops of the real bundled sample, written with rasterio."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import rasterio
from rasterio.windows import Window

from mars_glacier.scenes import SAMPLE_DIR as SAMPLE

RGB = SAMPLE / "everest_sample_RGB_2000-10-30.tif"
NIR = SAMPLE / "everest_sample_B4_2000-10-30.tif"


def crop(src: Path, dst: Path, rows: tuple[int, int], cols: tuple[int, int], shift_px: float = 0.0,
         bands: list[int] | None = None) -> Path:
    """Window of ``src`` to ``dst``; ``shift_px`` moves its transform (another grid)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    win = Window(cols[0], rows[0], cols[1] - cols[0], rows[1] - rows[0])
    with rasterio.open(src) as ds:
        data = ds.read(bands, window=win) if bands else ds.read(window=win)
        t = ds.window_transform(win)
        if shift_px:
            t = rasterio.Affine(t.a, t.b, t.c + shift_px * t.a, t.d, t.e, t.f)
        profile = {**ds.profile, "width": win.width, "height": win.height, "transform": t, "count": data.shape[0]}
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def crop_scene(root: Path, rows: tuple[int, int], cols: tuple[int, int], name: str = "everest_2000") -> Path:
    crop(RGB, root / f"{name}_RGB_x.tif", rows, cols)
    crop(NIR, root / f"{name}_B4_x.tif", rows, cols)
    return root


def stack_of(root: Path, dst: Path) -> Path:
    """A 4-band (red, green, blue, nir) GeoTIFF of the pair in ``root``."""
    rgb, nir = next(root.glob("*_RGB_*.tif")), next(root.glob("*_B4_*.tif"))
    with rasterio.open(rgb) as a, rasterio.open(nir) as b:
        data = np.concatenate([a.read(), b.read()])
        profile = {**a.profile, "count": 4}
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data)
    return dst


def far_away_outlines(path: Path) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"RGIId": "RGI60-01.00001"},
        "geometry": {"type": "Polygon", "coordinates": [[[-150, 60], [-149.9, 60], [-149.9, 60.1], [-150, 60]]]}}]}))
    return path


def empty_outlines(path: Path) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    return path


def mars(*args: str, cwd: Path) -> SimpleNamespace:
    """``mars-core ARGS`` in this process (the real CLI entry point, its exit-code contract and
    a real MLflow SQLite store in ``cwd``); only this package's plugin is loaded, so work in
    progress of sibling packages in the shared environment cannot break these tests."""
    from mars_core import plugins
    from mars_core.cli import main

    old_cwd, old_env = os.getcwd(), dict(os.environ)
    plugins.reset()  # the restriction below applies to a fresh plugin manager only
    out, err = io.StringIO(), io.StringIO()
    os.environ.update({"MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}", "MARS_CORE_PLUGINS": "glacier"})
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)
        plugins.reset()  # later tests in this process must not inherit the glacier-only manager
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")}
