"""A SYNTHETIC second date made from a real scene: glacier margins retreat.

No second real date of the scene is available, so the temporal comparison is exercised on
the real scene and a SYNTHETIC copy in which every glacier outline is eroded by
``retreat_px`` pixels (the margins, tongues included, retreat) and the uncovered pixels take
the spectrum of bare ground: per band, the median of the scene's pixels outside all
outlines that are not saturated. The output raster carries the tag ``SYNTHETIC`` describing
this, so every product made from it is labelled SYNTHETIC; the true change mask (1 where
glacier was removed) is written beside it (``<name>.truth.tif``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mars_core.errors import MarsError
from mars_glacier.stacking import SYNTHETIC_TAG


def glacier_ids(outlines: Path, crs, transform, shape: tuple[int, int], layer: str | None = None
                ) -> tuple[np.ndarray, list[dict[str, object]]]:
    """int32 [H, W] raster of 1-based outline index (0 outside every outline; where outlines
    overlap, the later one wins) and the outlines' attributes (RGIId, Name when present)."""
    import shapely
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    from mars_core.geodata import read_vector

    geoms, vcrs, columns = read_vector(outlines, layer)
    if vcrs is None:
        raise MarsError(f"{outlines.name} has no CRS; give outlines with a CRS (e.g. EPSG:4326)")
    shapes, attrs = [], []
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            continue
        geo = transform_geom(vcrs, crs, shapely.geometry.mapping(g))
        shapes.append((geo, len(shapes) + 1))
        attrs.append({"RGIId": str(columns["RGIId"][i]) if "RGIId" in columns else f"outline-{i}",
                      "Name": (None if "Name" not in columns or columns["Name"][i] is None
                               else str(columns["Name"][i]))})
    if not shapes:
        raise MarsError(f"{outlines.name}: the outlines layer is empty (no polygon)")
    ids = rasterize(shapes, out_shape=shape, transform=transform, fill=0, dtype="int32")
    return ids, attrs


def make_synthetic(scene: Path, outlines: Path, output: Path, retreat_px: int = 6, overwrite: bool = False) -> Path:
    """Write the SYNTHETIC retreated copy of the 4-band ``scene`` to ``output`` (atomically)."""
    import os

    import rasterio
    from scipy import ndimage

    if retreat_px < 1:
        raise MarsError(f"retreat must be at least 1 pixel, got {retreat_px}")
    if output.exists() and not overwrite:
        raise MarsError(f"output {output} already exists; pass --overwrite to replace it")
    truth_path = output.with_name(f"{output.stem}.truth.tif")
    with rasterio.open(scene) as ds:
        if ds.count != 4:
            raise MarsError(f"{scene.name} has {ds.count} band(s); a 4-band (red, green, blue, nir) scene is needed")
        data = ds.read()
        profile = ds.profile
        ids, _ = glacier_ids(outlines, ds.crs, ds.transform, (ds.height, ds.width))
    glacier = ids > 0
    if not glacier.any():
        raise MarsError(f"no outline of {outlines.name} overlaps {scene.name}")
    kept = ndimage.binary_erosion(glacier, structure=np.ones((3, 3), bool), iterations=retreat_px)
    removed = glacier & ~kept
    ground = ~glacier & (data < 255).all(0)
    rng = np.random.default_rng(0)
    out = data.copy()
    for b in range(data.shape[0]):
        med = float(np.median(data[b][ground])) if ground.any() else 80.0
        sd = float(np.std(data[b][ground])) / 4 if ground.any() else 5.0
        vals = np.clip(rng.normal(med, sd, int(removed.sum())), 0, 254)
        out[b][removed] = vals.astype(data.dtype)
    tag = (f"SYNTHETIC second date made from {scene.name}: every glacier outline of {outlines.name} eroded by "
           f"{retreat_px} px ({int(removed.sum())} px retreat), uncovered pixels set to bare-ground spectra")
    tmp, tmp_truth = (p.with_name(f".{p.name}.partial-{os.getpid()}") for p in (output, truth_path))
    try:
        with rasterio.open(tmp, "w", **{**profile, "driver": "GTiff", "compress": "deflate"}) as dst:
            dst.write(out)
            dst.update_tags(**{SYNTHETIC_TAG: tag})
        with rasterio.open(tmp_truth, "w", **{**profile, "driver": "GTiff", "count": 1, "dtype": "uint8",
                                               "nodata": None, "compress": "deflate"}) as dst:
            dst.write(removed.astype("uint8")[None])
            dst.update_tags(**{SYNTHETIC_TAG: "true retreat of the SYNTHETIC date (1 = glacier removed)"})
        os.replace(tmp, output)
        os.replace(tmp_truth, truth_path)
    finally:
        for p in (tmp, tmp_truth):
            if p.exists():
                p.unlink()
    return output
