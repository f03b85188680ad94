"""Glacier extent at two dates, per glacier: ``mars-core glacier compare``.

Both dates go through the core's streaming predictor (``mars_core.raster.predict_scene``),
on the first date's grid: a second date on another grid is resampled onto it (bilinear)
with a warning, and refused when the two do not overlap. Then, per outline (RGIId), the
predicted glacier area inside the outline at each date, in km², and its change.

Products in the output folder (written to a temporary folder beside it, renamed at the
end; an existing folder is never replaced without ``--overwrite``):

* ``areas.csv``: RGIId, Name, area_km2_date1, area_km2_date2, change_km2, change_pct;
* ``change.tif``: uint8, 0 no glacier at either date, 1 glacier at both, 2 gain (glacier
  only at date 2), 3 loss (glacier only at date 1), 255 nodata at either date;
* ``change.geojson``: polygons of gain and loss (``change``, ``area_m2``, ``area_px``,
  ``RGIId`` of the outline holding the polygon's representative point, or null), CRS of
  the first date;
* ``change.png``: the map (loss red, gain blue, stable glacier white, outlines black);
* ``date1.tif`` / ``date2.tif`` (+ ``.prob.tif``, ``.geojson``): the two predictions;
* ``summary.json``: inputs, model, dates' labels (SYNTHETIC where a date is), totals.

Areas use the core's pixel areas (``mars_core.raster.polygons.row_areas_m2``): map-plane
areas for a projected CRS, ellipsoidal areas for lon/lat. The masks are held in memory
once predicted (uint8, one byte per pixel and date), which bounds the scene size to what
fits in memory twice; the prediction itself streams.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mars_core.errors import MarsError
from mars_glacier.stacking import resolve_scene, synthetic_label
from mars_glacier.synthetic import glacier_ids

NODATA = 255
STABLE_OFF, STABLE_ON, GAIN, LOSS = 0, 1, 2, 3


@dataclass
class GlacierChange:
    rgi_id: str
    name: str | None
    area1_km2: float
    area2_km2: float

    @property
    def change_km2(self) -> float:
        return self.area2_km2 - self.area1_km2

    @property
    def change_pct(self) -> float | None:
        return None if self.area1_km2 == 0 else 100.0 * self.change_km2 / self.area1_km2


def change_map(mask1: np.ndarray, mask2: np.ndarray) -> np.ndarray:
    """uint8 change classes from two masks (1 glacier, 0 not, 255 nodata)."""
    out = np.full(mask1.shape, NODATA, dtype=np.uint8)
    valid = (mask1 != NODATA) & (mask2 != NODATA)
    g1, g2 = mask1 == 1, mask2 == 1
    out[valid & ~g1 & ~g2] = STABLE_OFF
    out[valid & g1 & g2] = STABLE_ON
    out[valid & ~g1 & g2] = GAIN
    out[valid & g1 & ~g2] = LOSS
    return out


def areas_per_glacier(mask1: np.ndarray, mask2: np.ndarray, ids: np.ndarray, row_area_m2: np.ndarray,
                      attrs: list[dict[str, Any]]) -> list[GlacierChange]:
    """Glacier area inside each outline at each date (km²), pixels valid at both dates only."""
    valid = (mask1 != NODATA) & (mask2 != NODATA)
    px_area = np.broadcast_to(row_area_m2[:, None], ids.shape)
    n = len(attrs)
    a1 = np.bincount(ids[valid & (mask1 == 1)], weights=px_area[valid & (mask1 == 1)], minlength=n + 1)
    a2 = np.bincount(ids[valid & (mask2 == 1)], weights=px_area[valid & (mask2 == 1)], minlength=n + 1)
    return [GlacierChange(str(attrs[i]["RGIId"]), attrs[i].get("Name"), a1[i + 1] / 1e6, a2[i + 1] / 1e6)
            for i in range(n)]


def align(date2: Path, ref: Path, workdir: Path) -> tuple[Path, str | None]:
    """``date2`` on ``ref``'s grid: as is, resampled (with a warning), or MarsError (no overlap)."""
    import rasterio
    from rasterio.warp import Resampling, reproject, transform_bounds

    from mars_core.geodata import check_same_grid

    with rasterio.open(ref) as a, rasterio.open(date2) as b:
        if a.count != b.count:
            raise MarsError(f"{date2.name} has {b.count} band(s) but {ref.name} has {a.count}")
        try:
            check_same_grid(ref, a, date2, b, 0.01)
            return date2, None
        except MarsError:
            pass
        if a.crs is None or b.crs is None:
            raise MarsError(f"{date2.name} and {ref.name} are on different grids and one has no CRS: cannot align")
        bb = transform_bounds(b.crs, a.crs, *b.bounds, densify_pts=21)
        ab = a.bounds
        if bb[0] >= ab[2] or bb[2] <= ab[0] or bb[1] >= ab[3] or bb[3] <= ab[1]:
            raise MarsError(f"{date2.name} does not overlap {ref.name}: nothing to compare")
        out = workdir / "date2_on_date1_grid.tif"
        profile = {**a.profile, "driver": "GTiff", "dtype": b.dtypes[0], "count": b.count, "nodata": 0,
                   "compress": "deflate"}
        with rasterio.open(out, "w", **profile) as dst:
            for i in range(1, b.count + 1):
                dst_arr = np.zeros((a.height, a.width), dtype=b.dtypes[0])
                reproject(rasterio.band(b, i), dst_arr, dst_transform=a.transform, dst_crs=a.crs,
                          dst_nodata=0, resampling=Resampling.bilinear)
                dst.write(dst_arr, i)
            dst.update_tags(**b.tags())
    return out, (f"warning: {date2.name} is on another grid than {ref.name}; resampled onto it (bilinear); "
                 "pixels it does not cover are nodata")


def _polygons(change: np.ndarray, ids: np.ndarray, attrs: list[dict[str, Any]], transform: Any,
              row_area_m2: np.ndarray, min_pixels: int) -> list[dict[str, Any]]:
    import shapely
    from rasterio.features import shapes
    from scipy import ndimage

    feats = []
    px_area = np.broadcast_to(row_area_m2[:, None], change.shape)
    inv = ~transform
    for value, label in ((LOSS, "loss"), (GAIN, "gain")):
        comp, n = ndimage.label(change == value, structure=np.ones((3, 3), bool))
        if n == 0:
            continue
        counts = np.bincount(comp.ravel(), minlength=n + 1)
        areas = np.bincount(comp.ravel(), weights=px_area.ravel(), minlength=n + 1)
        for geom, cid in shapes(comp, mask=comp > 0, transform=transform, connectivity=8):
            cid = int(cid)
            if counts[cid] < min_pixels:
                continue
            pt = shapely.geometry.shape(geom).representative_point()
            col, row = inv * (pt.x, pt.y)
            gid = int(ids[min(int(row), ids.shape[0] - 1), min(int(col), ids.shape[1] - 1)])
            feats.append({"type": "Feature", "geometry": geom,
                          "properties": {"change": label, "area_m2": float(areas[cid]), "area_px": int(counts[cid]),
                                         "RGIId": attrs[gid - 1]["RGIId"] if gid > 0 else None}})
    return feats


def _png(path: Path, change: np.ndarray, ids: np.ndarray, titles: tuple[str, str], total: tuple[float, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    rgb = np.array([[0.55, 0.5, 0.45], [1, 1, 1], [0.15, 0.35, 0.9], [0.85, 0.1, 0.1]])
    shown = np.where(change == NODATA, 0, change)
    fig, ax = plt.subplots(figsize=(8, 8 * change.shape[0] / max(change.shape[1], 1) + 0.8), dpi=100)
    ax.imshow(shown, cmap=ListedColormap(rgb), vmin=0, vmax=3, interpolation="nearest")
    ax.contour(ids > 0, levels=[0.5], colors="black", linewidths=0.6)
    ax.set_title(f"glacier extent change\n1: {titles[0]}\n2: {titles[1]}\n"
                 f"inside outlines: {total[0]:.2f} -> {total[1]:.2f} km2 (loss red, gain blue)", fontsize=8)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def compare(model_uri: str, date1: Path, date2: Path, outlines: Path, output: Path, *, overwrite: bool = False,
            tile: int | None = None, overlap: float = 0.25, threshold: float | None = None, device: str = "cpu",
            min_pixels: int = 4, layer: str | None = None, label1: str | None = None,
            label2: str | None = None) -> dict[str, Any]:
    """Predict both dates, measure every outline's glacier area at each, write the products."""
    import rasterio

    from mars_core.cli.commands import _load_model
    from mars_core.raster import predict_scene
    from mars_core.raster.polygons import row_areas_m2

    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise MarsError(f"output {output} already exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise MarsError(f"output's parent folder {output.parent} does not exist")
    if not outlines.exists():
        raise MarsError(f"outlines file not found: {outlines}")
    loaded = _load_model(model_uri, "glacier")
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        work = tmp / "work"
        work.mkdir()
        (work / "1").mkdir()
        (work / "2").mkdir()
        scene1 = resolve_scene(date1, work / "1")
        scene2 = resolve_scene(date2, work / "2")
        scene2, warning = align(scene2, scene1, work)
        if warning:
            print(warning, file=sys.stderr)
        labels = []
        for given, path, original in ((label1, scene1, date1), (label2, scene2, date2)):
            syn = synthetic_label(path)
            text = given or original.name
            if syn and not text.startswith("SYNTHETIC"):
                text = f"SYNTHETIC: {text}"
            labels.append(text)
        with rasterio.open(scene1) as ds:
            crs, transform, shape = ds.crs, ds.transform, (ds.height, ds.width)
        ids, attrs = glacier_ids(outlines, crs, transform, shape, layer)
        if not (ids > 0).any():
            raise MarsError(f"no outline of {outlines.name} overlaps {date1.name}")
        results = []
        for i, scene in ((1, scene1), (2, scene2)):
            results.append(predict_scene(loaded.model, loaded.contract, [scene], tmp / f"date{i}.tif", tile=tile,
                                         overlap=overlap, threshold=threshold, device=device, progress=False,
                                         min_area_px=min_pixels))
        with rasterio.open(tmp / "date1.tif") as m1, rasterio.open(tmp / "date2.tif") as m2:
            mask1, mask2 = m1.read(1), m2.read(1)
            profile = {**m1.profile}
        row_area, notes = row_areas_m2(crs, transform, shape[0])
        if row_area is None:
            raise MarsError(f"areas need a CRS with units: {notes[0]}")
        change = change_map(mask1, mask2)
        with rasterio.open(tmp / "change.tif", "w", **{**profile, "nodata": NODATA}) as dst:
            dst.write(change, 1)
            dst.update_tags(classes="0 no glacier, 1 glacier at both dates, 2 gain, 3 loss, 255 nodata",
                            date1=labels[0], date2=labels[1])
        rows = areas_per_glacier(mask1, mask2, ids, row_area, attrs)
        with (tmp / "areas.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow([f"# date1: {labels[0]}"])
            w.writerow([f"# date2: {labels[1]}"])
            w.writerow(["RGIId", "Name", "area_km2_date1", "area_km2_date2", "change_km2", "change_pct"])
            for r in rows:
                w.writerow([r.rgi_id, r.name or "", f"{r.area1_km2:.6f}", f"{r.area2_km2:.6f}", f"{r.change_km2:.6f}",
                            "" if r.change_pct is None else f"{r.change_pct:.3f}"])
        feats = _polygons(change, ids, attrs, transform, row_area, min_pixels)
        geo = {"type": "FeatureCollection", "date1": labels[0], "date2": labels[1],
               "crs_wkt": crs.to_wkt() if crs else None, "features": feats}
        (tmp / "change.geojson").write_text(json.dumps(geo))
        total = (sum(r.area1_km2 for r in rows), sum(r.area2_km2 for r in rows))
        _png(tmp / "change.png", change, ids, (labels[0], labels[1]), total)
        summary = {"model": model_uri, "date1": {"input": str(date1), "label": labels[0]},
                   "date2": {"input": str(date2), "label": labels[1]}, "outlines": str(outlines),
                   "glaciers": len(rows), "area_km2_date1": total[0], "area_km2_date2": total[1],
                   "change_km2": total[1] - total[0], "loss_polygons": sum(f["properties"]["change"] == "loss"
                                                                           for f in feats),
                   "gain_polygons": sum(f["properties"]["change"] == "gain" for f in feats),
                   "resampled_date2": warning is not None}
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
        shutil.rmtree(work)
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
