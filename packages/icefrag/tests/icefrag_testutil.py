"""Test helpers of mars-icefrag (a uniquely named module: tests run with importlib mode)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from mars_icefrag.synthetic import MARS_STEREO_WKT


def write_tif(path: Path, arr: np.ndarray, origin=(1000.0, 2000.0), res=0.25, crs: str = MARS_STEREO_WKT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1,
                       dtype=arr.dtype.name, crs=crs, transform=from_origin(origin[0], origin[1], res, res)) as d:
        d.write(arr, 1)
    return path
