"""Writers of real GeoTIFF and vector files for the geodata tests (all data SYNTHETIC)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.transform import from_origin

UTM45N = "EPSG:32645"
#: UTM 45N grid near Everest, 30 m pixels (SYNTHETIC values on it).
UTM_TRANSFORM = from_origin(470000.0, 3100020.0, 30.0, 30.0)
MARS_STEREO = (
    'PROJCS["Oblique_Stereographic",GEOGCS["GCS_D_MARS",DATUM["MARS",SPHEROID["MARS",3396190,0]],'
    'PRIMEM["Reference Meridian",0],UNIT["degree",0.0174532925199433]],PROJECTION["Stereographic"],'
    'PARAMETER["latitude_of_origin",-85],PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
#: The same CRS as written by another tool: every name "unknown".
MARS_STEREO_UNKNOWN = (MARS_STEREO.replace('GEOGCS["GCS_D_MARS"', 'GEOGCS["unknown"')
                       .replace('DATUM["MARS"', 'DATUM["unknown"').replace('SPHEROID["MARS"', 'SPHEROID["unknown"'))
MARS_TRANSFORM = from_origin(1000.0, 2000.0, 0.25, 0.25)


def write_tif(path: Path, arr: np.ndarray, crs: str | None = UTM45N, transform: Affine = UTM_TRANSFORM,
              nodata: float | None = None) -> Path:
    arr = arr if arr.ndim == 3 else arr[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=arr.shape[0],
                       dtype=arr.dtype.name, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(arr)
    return path


def write_geojson(path: Path, polygons_lonlat: list[list[tuple[float, float]]], crs: str = "EPSG:4326") -> Path:
    """Polygons (one ring each) in ``crs``, as a GeoJSON FeatureCollection."""
    feats = [{"type": "Feature", "properties": {"id": i, "cls": 1 + i % 2},
              "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}}
             for i, ring in enumerate(polygons_lonlat)]
    doc = {"type": "FeatureCollection", "features": feats}
    if crs != "EPSG:4326":
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def geojson_to_gpkg(src: Path, dst: Path, layer: str) -> Path:
    """The same features as a GeoPackage layer (pyogrio, as the RGI outlines are shipped)."""
    import pyogrio.raw

    meta, _, geoms, fields = pyogrio.raw.read(str(src))
    pyogrio.raw.write(str(dst), geoms, fields, fields=meta["fields"], geometry_type="Polygon", crs="EPSG:4326",
                      driver="GPKG", layer=layer)
    return dst
