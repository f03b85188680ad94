"""SYNTHETIC time series of recurring slope lineae (no labelled RSL imagery is public).

Everything written here is labelled SYNTHETIC (GeoTIFF tags, band descriptions, the sample's
README and SYNTHETIC.json). The series are built to be hard in the ways RSL detection is hard:

* terrain: a smooth random DEM plus a steep wall (a crater rim or a canyon wall crosses the
  site), lit by the sun (Lambertian hillshade), on a textured albedo;
* lineae: narrow (1-3 px) dark streaks that start near the top of steep slopes and run
  DOWNSLOPE (following the DEM gradient); over the season their length grows date by date
  (some start later), so each date has its own RSL mask and the change between two dates
  is the new length;
* static distractors NOT labelled: dark slope streaks of the same look that do not change
  between dates (dust-avalanche streaks), and dark boulders; only the change of darkening
  over time tells RSL from them;
* illumination differs between dates (sun azimuth and elevation, gain and offset), each
  date is misregistered by up to ``max_shift`` px (sub-pixel, bilinear; the labels stay on
  the reference grid, as after coregistration), and noise is added.

Output per site (folder ``site_XXX``): ``dNN.tif`` (uint16, 10-bit DN as in HiRISE RDR RED,
with an ``ACQUISITION_DATE`` tag), ``rsl_dNN.tif`` (1 where lineae are visible at date NN)
and ``change_dNN.tif`` (1 where lineae grew since date NN-1; all 0 at the first date), on
the Mars sphere in an equirectangular projection at 0.5 m/px.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

MARS_EQC_WKT = (
    'PROJCS["Mars_Equirectangular",GEOGCS["GCS_Mars_2000_Sphere",DATUM["D_Mars_2000_Sphere",'
    'SPHEROID["Mars_2000_Sphere_IAU_IAG",3396190,0]],PRIMEM["Reference_Meridian",0],'
    'UNIT["Degree",0.0174532925199433]],PROJECTION["Equirectangular"],PARAMETER["standard_parallel_1",0],'
    'PARAMETER["central_meridian",0],PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
PIXEL_SIZE_M = 0.5
MAX_DN = 1023
SYNTHETIC_NOTE = "SYNTHETIC RSL time series from mars_rsl.synthetic; not HiRISE data"


@dataclass
class SyntheticSite:
    images: np.ndarray  # uint16 [T,H,W]
    rsl: np.ndarray  # uint8 [T,H,W]: lineae visible at each date
    change: np.ndarray  # uint8 [T,H,W]: lineae grown since the previous date (0 at date 0)
    slope: np.ndarray  # float [H,W], for inspection
    dates: list[dt.date]


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    n = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return n / (n.std() + 1e-9)


def _dem(rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ang = rng.uniform(0, 2 * np.pi)
    d = (xx - size / 2) * np.cos(ang) + (yy - size / 2) * np.sin(ang) + rng.uniform(-size / 5, size / 5)
    wall = 40.0 * np.tanh(d / rng.uniform(18, 30))  # a steep wall across the site, in "px of height"
    return wall + 6.0 * _noise(rng, (size, size), 14) + 1.5 * _noise(rng, (size, size), 4)


def _hillshade(dem: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    gy, gx = np.gradient(dem)
    slope = np.arctan(np.hypot(gx, gy))
    aspect = np.arctan2(-gx, gy)
    az, el = np.radians(azimuth), np.radians(elevation)
    shade = np.sin(el) * np.cos(slope) + np.cos(el) * np.sin(slope) * np.cos(az - aspect)
    return np.clip(shade, 0.05, None)


def _streak_path(rng: np.random.Generator, dem: np.ndarray, start: tuple[float, float], length: int) -> np.ndarray:
    """Points (y, x) of a streak running downslope from ``start`` for ``length`` px."""
    gy, gx = np.gradient(ndimage.gaussian_filter(dem, 2))
    h, w = dem.shape
    y, x = start
    pts = []
    wobble = 0.0
    for _ in range(length):
        iy, ix = int(round(y)), int(round(x))
        if not (1 <= iy < h - 1 and 1 <= ix < w - 1):
            break
        pts.append((y, x))
        vy, vx = -gy[iy, ix], -gx[iy, ix]
        n = np.hypot(vy, vx) + 1e-9
        wobble = 0.8 * wobble + rng.normal(0, 0.08)
        c, s = np.cos(wobble), np.sin(wobble)
        vy, vx = (vy * c - vx * s) / n, (vy * s + vx * c) / n
        y, x = y + vy, x + vx
    return np.array(pts).reshape(-1, 2)


def _draw(shape: tuple[int, int], pts: np.ndarray, width: float) -> np.ndarray:
    m = np.zeros(shape, bool)
    if len(pts):
        iy = np.clip(np.round(pts[:, 0]).astype(int), 0, shape[0] - 1)
        ix = np.clip(np.round(pts[:, 1]).astype(int), 0, shape[1] - 1)
        m[iy, ix] = True
        r = max(0, int(round((width - 1) / 2)))
        if r:
            m = ndimage.binary_dilation(m, iterations=r)
    return m


def _draw_tone(shape: tuple[int, int], pts: np.ndarray, width: float, tone: np.ndarray) -> np.ndarray:
    """Like ``_draw`` but each point carries its tone (the nearest point's, after dilation)."""
    out = np.zeros(shape)
    iy = np.clip(np.round(pts[:, 0]).astype(int), 0, shape[0] - 1)
    ix = np.clip(np.round(pts[:, 1]).astype(int), 0, shape[1] - 1)
    out[iy, ix] = tone
    r = max(0, int(round((width - 1) / 2)))
    return ndimage.grey_dilation(out, size=(2 * r + 1, 2 * r + 1)) if r else out


def make_site(rng: np.random.Generator, size: int = 256, n_dates: int = 4, n_lineae: tuple[int, int] = (6, 14),
              n_static: tuple[int, int] = (2, 6), max_shift: float = 0.5, noise: float = 0.015) -> SyntheticSite:
    """One SYNTHETIC site: ``n_dates`` images of a season with growing lineae (see module docstring)."""
    dem = _dem(rng, size)
    gy, gx = np.gradient(dem)
    slope = np.hypot(gx, gy)
    steep = slope > np.percentile(slope, 75)
    albedo = 0.55 + 0.06 * _noise(rng, (size, size), 6) + 0.03 * _noise(rng, (size, size), 1.2)

    def seeds(k: int) -> list[tuple[float, float]]:
        ys, xs = np.nonzero(steep)
        idx = rng.choice(len(ys), size=min(k, len(ys)), replace=False)
        return [(float(ys[i]), float(xs[i])) for i in idx]

    # static distractors: same look, constant over time (dust-avalanche slope streaks), boulders
    static_dark = np.zeros((size, size))
    for s in seeds(int(rng.integers(*n_static, endpoint=True))):
        path = _streak_path(rng, dem, s, int(rng.integers(25, 70)))
        static_dark = np.maximum(static_dark, rng.uniform(0.15, 0.3) * _draw((size, size), path, rng.uniform(1, 3)))
    for _ in range(int(rng.integers(5, 15))):
        by, bx = rng.integers(4, size - 4, 2)
        yy, xx = np.ogrid[:size, :size]
        static_dark = np.maximum(static_dark, 0.3 * (((yy - by) ** 2 + (xx - bx) ** 2) <= rng.uniform(1, 6)))

    # lineae: full paths, growing over the season (a start date, then a fraction per date)
    lineae = []
    for s in seeds(int(rng.integers(*n_lineae, endpoint=True))):
        full = _streak_path(rng, dem, s, int(rng.integers(30, 110)))
        if len(full) < 8:
            continue
        start = int(rng.integers(0, max(1, n_dates - 1)))
        growth = np.sort(rng.uniform(0.15, 1.0, n_dates))
        growth[:start] = 0.0
        lineae.append((full, growth, rng.uniform(1, 3), rng.uniform(0.25, 0.45)))

    base_date = dt.date(2010, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000)))
    images = np.zeros((n_dates, size, size), np.uint16)
    rsl = np.zeros((n_dates, size, size), np.uint8)
    for t in range(n_dates):
        dark = static_dark.copy()
        for full, growth, width, depth in lineae:
            n = int(round(growth[t] * len(full)))
            if n < 3:
                continue
            m = _draw((size, size), full[:n], width)
            rsl[t] |= m.astype(np.uint8)
            fade = np.linspace(1.0, 0.6, n)  # tips are fainter than the source
            # darkest at the source, fainter towards the tip
            along = np.zeros((size, size))
            along[m] = 1.0
            tone = _draw_tone((size, size), full[:n], width, fade)
            dark = np.maximum(dark, depth * ndimage.gaussian_filter(tone, 0.5) * along.clip(0.7, 1))
        shade = _hillshade(dem, rng.uniform(200, 340), rng.uniform(25, 60))
        refl = albedo * (1 - dark) * (0.45 + 0.55 * shade / shade.max())
        refl = refl * rng.uniform(0.8, 1.2) + rng.uniform(-0.03, 0.03)
        refl = ndimage.shift(refl, rng.uniform(-max_shift, max_shift, 2), order=1, mode="nearest")
        refl = refl + noise * rng.normal(size=refl.shape)
        images[t] = np.clip(np.round(refl / 1.2 * MAX_DN), 1, MAX_DN).astype(np.uint16)
    change = np.zeros_like(rsl)
    change[1:] = (rsl[1:] == 1) & (rsl[:-1] == 0)
    dates = [base_date + dt.timedelta(days=int(d)) for d in np.cumsum(rng.integers(15, 40, n_dates)) - 15]
    return SyntheticSite(images, rsl, change.astype(np.uint8), slope, dates)


def _write(path: Path, arr: np.ndarray, transform: rasterio.Affine, tags: dict[str, str], desc: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with rasterio.open(tmp, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=arr.dtype.name, crs=MARS_EQC_WKT, transform=transform, compress="deflate") as ds:
        ds.write(arr, 1)
        ds.update_tags(SYNTHETIC="true", NOTE=SYNTHETIC_NOTE, **tags)
        ds.set_band_description(1, desc)
    os.replace(tmp, path)


def write_sites(out: Path, n_sites: int, size: int = 256, n_dates: int = 4, seed: int = 0,
                overwrite: bool = False) -> list[str]:
    """Write ``n_sites`` SYNTHETIC sites under ``out``; returns the site keys."""
    from mars_core.errors import MarsError

    out = Path(out)
    if n_dates < 2:
        raise MarsError("a series needs at least 2 dates")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise MarsError(f"{out} is not empty; choose an empty folder (SYNTHETIC data never overwrites files)")
    out.mkdir(parents=True, exist_ok=True)
    keys = []
    meta: dict[str, object] = {"SYNTHETIC": True, "note": SYNTHETIC_NOTE, "generator": "mars_rsl.synthetic",
                               "seed": seed, "size": size, "dates": n_dates, "sites": {}}
    for i in range(n_sites):
        rng = np.random.default_rng([seed, i])
        site = make_site(rng, size, n_dates)
        key = f"site_{i:03d}"
        d = out / key
        d.mkdir(exist_ok=True)
        transform = from_origin(10_000.0 * i, 50_000.0, PIXEL_SIZE_M, PIXEL_SIZE_M)
        for t in range(n_dates):
            day = site.dates[t].isoformat()
            _write(d / f"d{t:02d}.tif", site.images[t], transform, {"ACQUISITION_DATE": day},
                   "SYNTHETIC hirise_red DN (10-bit)")
            _write(d / f"rsl_d{t:02d}.tif", site.rsl[t], transform, {"ACQUISITION_DATE": day},
                   "SYNTHETIC RSL mask (1 lineae)")
            _write(d / f"change_d{t:02d}.tif", site.change[t], transform, {"ACQUISITION_DATE": day},
                   "SYNTHETIC RSL change since previous date (1 grown)")
        meta["sites"][key] = {"dates": [x.isoformat() for x in site.dates],  # type: ignore[index]
                              "rsl_fraction": [float(m.mean()) for m in site.rsl],
                              "change_fraction": [float(m.mean()) for m in site.change]}
        keys.append(key)
    (out / "SYNTHETIC.json").write_text(json.dumps(meta, indent=1))
    return keys
