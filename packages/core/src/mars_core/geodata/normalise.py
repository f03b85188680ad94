"""Scene statistics for the ``robust`` normalisation method, read with bounded memory.

The percentiles come from a decimated read (GDAL uses the overviews when the file has
them), at most ``MAX_SAMPLE_PIXELS`` pixels per band, whatever the scene size: a HiRISE
scene of 800 MP costs the same memory as a 1-MP chip. Training tiles and whole-scene
prediction both call :func:`scene_normalisation`, so a model sees the same numbers in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from rasterio.enums import MaskFlags, Resampling

from mars_core.data import Normalisation
from mars_core.errors import MarsError

#: Upper bound of the pixels per band read to estimate the percentiles (about 2 MP).
MAX_SAMPLE_PIXELS = 1 << 21


def _decimated(ds: Any, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(bands [C, h, w] as float64, valid [h, w]) at a resolution holding at most MAX_SAMPLE_PIXELS."""
    factor = max(1.0, float(np.sqrt(ds.height * ds.width / MAX_SAMPLE_PIXELS)))
    h, w = max(1, int(ds.height / factor)), max(1, int(ds.width / factor))
    data = ds.read(out_shape=(ds.count, h, w), resampling=Resampling.nearest).astype(np.float64)
    valid = np.isfinite(data).all(axis=0)
    nd = nodata if nodata is not None else ds.nodata
    if nd is not None and not np.isnan(nd):
        valid &= (data != nd).all(axis=0)
    elif any(MaskFlags.all_valid not in f and MaskFlags.nodata not in f for f in ds.mask_flag_enums):
        valid &= ds.dataset_mask(out_shape=(h, w), resampling=Resampling.nearest) != 0
    return data, valid


def percentiles(datasets: Sequence[Any], norm: Normalisation, nodata: Sequence[float | None] | None = None,
                what: str = "scene") -> tuple[list[float], list[float]]:
    """Per band (all bands of all ``datasets`` in order): the ``p_low``/``p_high`` percentiles
    of the valid, unsaturated pixels. A pixel is invalid when any band of its file is nodata."""
    low: list[float] = []
    high: list[float] = []
    saturated = np.asarray(norm.saturated, dtype=np.float64)
    for i, ds in enumerate(datasets):
        data, valid = _decimated(ds, None if nodata is None else nodata[i])
        for band in data:
            keep = valid & ~np.isin(band, saturated) if saturated.size else valid
            values = band[keep]
            if values.size == 0:
                raise MarsError(f"{what}: a band has no valid, unsaturated pixel to compute the robust "
                                "normalisation from (check nodata and normalisation.saturated)")
            lo, hi = np.percentile(values, [norm.p_low, norm.p_high])
            low.append(float(lo))
            high.append(float(hi))
    return low, high


def scene_normalisation(norm: Normalisation, datasets: Sequence[Any],
                        nodata: Sequence[float | None] | None = None, what: str = "scene") -> Normalisation:
    """The fixed affine map to apply to this scene: ``norm`` itself when fixed, the robust
    stretch evaluated on the scene's own percentiles otherwise."""
    if norm.method == "fixed":
        return norm
    low, high = percentiles(datasets, norm, nodata, what)
    return norm.for_scene(low, high)
