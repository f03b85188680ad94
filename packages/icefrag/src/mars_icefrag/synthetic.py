"""SYNTHETIC bitemporal scene generator for icefrag (no public training set exists).

Everything written here is labelled SYNTHETIC (GeoTIFF tags, band descriptions, README,
SYNTHETIC.json). What is simulated:

* a scarp crossing the scene (bright plateau, layered face, darker floor), lit from one
  side, with power-law texture;
* slab-like ice fragments (rotated super-ellipses) on the floor, each casting a shadow
  whose direction is the sun azimuth and whose length is ``height / tan(sun elevation)``;
* between the dates some fragments detach and fall (present only in T2): their slab and
  shadow are new; only the slab is labelled as change;
* other shadows change with no detachment: the sun elevation and azimuth differ between
  dates, so every shadow changes, and a few static fragments shift their shadow edge more
  (partial collapse of small relief); those pixels are NOT in the mask;
* a small scar appears on the scarp face where a fragment came from (unlabelled);
* radiometry differs between dates (gain, offset, gamma, sun-dependent brightness), both
  dates are resampled (sub-pixel) and T2 is misregistered against T1, noise is added.

Calibration against REAL HiRISE polar imagery (round 2, issue 13). The 38 original polar
chips (|latitude| >= 55 deg, no rotated/flipped/brightened copies) of the HiRISE landmark
chips (Wagstaff et al., DOI 10.5281/zenodo.2538136; 8-bit browse crops) were measured with
``mars_icefrag.calibration.image_stats`` (``benchmarks/bench_icefrag_calibration.py``);
the ranges below are their 10th-90th percentiles over chips:

* DN scale: each scene's T1 is mapped to a mean drawn from ``DN_MEAN`` and a standard
  deviation drawn from ``DN_SD``; T2 gets the same map, then its own radiometry. Values
  are written as uint16 within ``DN_VALID`` (3..1021: never a HiRISE RDR null 0 or
  saturation code 1/2/1022/1023), like the real pair of issue 13 (uint16, DN 0-205);
* texture: power-law fields with the spectral slope drawn from ``TEXTURE_SLOPE``;
* noise: Gaussian, sigma drawn from ``NOISE_DN``. The chips measure 0.35-1.7 DN, but they
  are JPEG-compressed, downsampled browse images, which remove noise; the range here goes
  up to 2.5 DN so that full-resolution products are covered too (a documented choice,
  not a measurement).

Geometry ranges (documented, not measured on the chips, which are too coarse for them):
fragment semi-axes ``FRAGMENT_SEMI_AXIS_PX`` (0.25 m/px: 0.75-5 m long axes), heights
``FRAGMENT_HEIGHT_OVER_B`` x the short semi-axis, sun elevation ``SUN_ELEVATION_DEG`` (polar
summer HiRISE images: low sun), shadow length ``height / tan(elevation)`` capped at
``MAX_SHADOW_PX``, shadow direction ``SUN_AZIMUTH_DEG`` from image "down" (T2 within +-5
deg of T1; the augmentation refuses flips because real shadows keep their side),
misregistration: half the scenes sub-pixel (<= 0.75 px per axis), half up to
``MAX_SHIFT_PX``. Each scene's drawn values are in ``SYNTHETIC.json``.

Output: uint16 GeoTIFFs and uint8 masks, 0.25 m/pixel, on the Mars sphere in an oblique
stereographic projection (WKT below), in ``t1/``, ``t2/`` and ``mask/`` with matching names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

MARS_STEREO_WKT = (
    'PROJCS["Oblique_Stereographic",GEOGCS["GCS_D_MARS",DATUM["MARS",SPHEROID["MARS",3396190,0]],'
    'PRIMEM["Reference Meridian",0],UNIT["degree",0.0174532925199433]],PROJECTION["Stereographic"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
PIXEL_SIZE_M = 0.25
SYNTHETIC_NOTE = "SYNTHETIC scene from mars_icefrag.synthetic; not HiRISE data"
GENERATOR_VERSION = 2  # 2: calibrated against real polar chips (issue 13); 1: round 1 (12-bit DN)

#: Measured on real polar chips (module docstring): 10th-90th percentile over chips.
DN_MEAN = (102.0, 164.0)
DN_SD = (13.2, 21.0)
TEXTURE_SLOPE = (-3.6, -1.9)
REAL_NOISE_DN = (0.35, 1.66)  # measured (texture leaks into it); NOISE_DN below is the choice
#: Documented choices (module docstring).
NOISE_DN = (0.4, 2.5)
DN_VALID = (3, 1021)
FRAGMENT_SEMI_AXIS_PX = (1.5, 10.0)
FRAGMENT_HEIGHT_OVER_B = (0.4, 1.0)
ICE_OVER_FLOOR = (1.4, 2.2)
SHADOW_FACTOR = (0.3, 0.6)
SUN_ELEVATION_DEG = (10.0, 35.0)
SUN_AZIMUTH_DEG = (-40.0, 40.0)
MAX_SHADOW_PX = 40.0
MAX_SHIFT_PX = 2.0
OUTER_SCALE_PX = 48.0  # texture outer scale (chosen so the autocorrelation length is near the chips')
SUBPIXEL_SHIFT = 0.75


@dataclass
class SyntheticPair:
    t1: np.ndarray  # uint16 [H,W]
    t2: np.ndarray  # uint16 [H,W]
    mask: np.ndarray  # uint8 [H,W], 1 = detached fragment (in T2 geometry)
    shadow_change: np.ndarray  # bool [H,W]: shadow in one date only, outside the mask
    meta: dict = field(default_factory=dict)


def _fractal(rng: np.random.Generator, shape: tuple[int, int], slope: float,
             outer_px: float = OUTER_SCALE_PX) -> np.ndarray:
    """Gaussian random field with power spectrum P(f) ~ (f**2 + f0**2)**(slope/2), sd 1
    (spectral synthesis; ``f0 = 1/outer_px`` flattens the spectrum above the outer scale so
    that a large scene is not dominated by its lowest frequencies).

    Why: real polar terrain is self-similar over a wide range of scales; a power-law field
    with the slope measured on real chips reproduces that where a sum of a few Gaussian-
    filtered noises (round 1) gave a flatter, too rough spectrum (slope -2.3 vs -3.0).
    """
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fy, fx)
    f2 = f**2 + (1.0 / outer_px) ** 2
    spec = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) * f2 ** (slope / 4)
    spec[0, 0] = 0
    field = np.fft.irfft2(spec, s=shape)
    return (field - field.mean()) / (field.std() + 1e-12)


def _slab(shape: tuple[int, int], cy: float, cx: float, a: float, b: float, angle: float, p: float) -> np.ndarray:
    """Super-ellipse footprint: a slab with rounded corners (p=2 ellipse, large p rectangle)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (np.abs(u / a) ** p + np.abs(v / b) ** p) <= 1.0


def _shadow(fp: np.ndarray, length_y: float, dx_per_dy: float) -> np.ndarray:
    """Pixels shaded by a slab: the footprint swept down by ``length_y`` rows (and sideways
    by ``dx_per_dy`` px per row: the sun azimuth), minus the slab."""
    sh = np.zeros_like(fp)
    n = max(1, int(np.ceil(length_y)))
    for k in range(1, n + 1):
        sh |= ndimage.shift(fp.astype(np.float32), (k, k * dx_per_dy), order=0) > 0.5
    return sh & ~fp


def _fragment(shape: tuple[int, int], frag: tuple, length_y: float, skew: float):
    """Slab and shadow of one fragment, computed in a local window (scenes may be large)."""
    cy, cx, a, b, ang, p, _height = frag
    r = int(np.ceil(max(a, b))) + 2
    pad = int(np.ceil(length_y * (1 + abs(skew)))) + 2
    y0, y1 = max(0, int(cy) - r), min(shape[0], int(cy) + r + pad)
    x0, x1 = max(0, int(cx) - r - pad), min(shape[1], int(cx) + r + pad)
    fp = _slab((y1 - y0, x1 - x0), cy - y0, cx - x0, a, b, ang, p)
    sh = _shadow(fp, length_y, skew)
    return (slice(y0, y1), slice(x0, x1)), fp, sh


def _draw_shift(rng: np.random.Generator, max_shift: float) -> np.ndarray:
    """Misregistration (dy, dx) of T2 against T1: half the scenes sub-pixel (|s| <= 0.75 px
    per axis), half up to ``max_shift`` px (residuals of real orthorectification reach a
    few pixels)."""
    sub = min(SUBPIXEL_SHIFT, max_shift)
    bound = sub if rng.random() < 0.5 else max_shift
    return rng.uniform(-bound, bound, size=2)


def generate_pair(size: int = 512, seed: int = 0, n_static: int | None = None, n_detached: int | None = None,
                  max_shift: float = MAX_SHIFT_PX, noise: float | None = None) -> SyntheticPair:
    """One SYNTHETIC scene pair (see the module docstring for what is simulated and how
    its statistics were calibrated). ``noise``: sigma in DN (None: drawn from NOISE_DN)."""
    rng = np.random.default_rng(seed)
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    n_static = n_static if n_static is not None else int(rng.integers(6, 12) * (size / 512) ** 2) + 3
    n_detached = n_detached if n_detached is not None else int(rng.integers(3, 6) * (size / 512) ** 2) + 1
    target_mean = rng.uniform(*DN_MEAN)
    target_sd = rng.uniform(*DN_SD)
    tex_slope = rng.uniform(*TEXTURE_SLOPE)
    noise_dn = float(noise) if noise is not None else float(rng.uniform(*NOISE_DN))

    # Scarp: plateau above, face in between, floor below (relative brightness, floor = 1).
    wave = np.sin(xx[0] / w * 2 * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))
    top = h * rng.uniform(0.18, 0.3) + h * 0.04 * wave
    face_w = h * rng.uniform(0.08, 0.14)
    y_top = top[None, :]
    y_bot = y_top + face_w
    plateau = yy < y_top
    face = (yy >= y_top) & (yy < y_bot)
    floor = yy >= y_bot
    tex = _fractal(rng, (h, w), tex_slope)
    layers = np.sin((yy - y_top) / rng.uniform(2.5, 5) * np.pi) * 0.5 + 0.3 * _fractal(rng, (h, w), tex_slope + 1)
    b_plateau, b_face = rng.uniform(1.4, 2.0), rng.uniform(1.05, 1.4)
    tex_amp = rng.uniform(0.06, 0.12)

    # Sun: azimuth (shadow direction from image "down", +y) and elevation per date.
    az1 = np.deg2rad(rng.uniform(*SUN_AZIMUTH_DEG))
    az2 = az1 + np.deg2rad(rng.uniform(-5, 5))
    elev1 = np.deg2rad(rng.uniform(*SUN_ELEVATION_DEG))
    elev2 = np.deg2rad(np.clip(np.rad2deg(elev1) + rng.uniform(-10, 10), *SUN_ELEVATION_DEG))
    side = xx / w if az1 >= 0 else 1 - xx / w

    def base(sun_gain: float) -> np.ndarray:
        img = np.where(plateau, b_plateau * (1 + tex_amp * tex), 0.0)
        img = np.where(face, b_face * (1 + 0.12 * layers + 0.5 * tex_amp * tex) * (0.85 + 0.3 * side), img)
        img = np.where(floor, 1 + tex_amp * tex, img)
        return img * sun_gain

    # Fragments on the floor, in the debris zone below the face.
    def place(n: int) -> list[tuple]:
        out = []
        for _ in range(n):
            cx = rng.uniform(10, w - 10)
            ylo = float(y_bot[0, int(np.clip(cx, 0, w - 1))]) + 6
            cy = rng.uniform(ylo, min(h - 12, ylo + h * 0.45))
            a = rng.uniform(*FRAGMENT_SEMI_AXIS_PX)
            b = max(FRAGMENT_SEMI_AXIS_PX[0] * 0.8, a * rng.uniform(0.5, 1.0))
            height = rng.uniform(*FRAGMENT_HEIGHT_OVER_B) * b
            out.append((cy, cx, a, b, rng.uniform(0, np.pi), rng.uniform(2.5, 6), height))
        return out

    static = place(n_static)
    detached = place(n_detached)
    collapsing = set(rng.choice(len(static), size=max(1, len(static) // 4), replace=False).tolist())
    ice = rng.uniform(*ICE_OVER_FLOOR)
    shade = rng.uniform(*SHADOW_FACTOR)
    ice_tex = 0.05 * _fractal(rng, (h, w), tex_slope)
    lengths: list[float] = []

    def render(frags: list[tuple], elev: float, az: float, sun_gain: float, extra_height: dict[int, float]):
        img = base(sun_gain)
        shadow_all = np.zeros((h, w), dtype=bool)
        slab_all = np.zeros((h, w), dtype=bool)
        for i, frag in enumerate(frags):
            length = min(MAX_SHADOW_PX, frag[6] * extra_height.get(i, 1.0) / np.tan(elev))
            lengths.append(length)
            win, fp, sh = _fragment((h, w), frag, length * np.cos(az), np.tan(az))
            shadow_all[win] |= sh
            slab_all[win] |= fp
        shadow_all &= ~slab_all
        img = np.where(shadow_all, shade * img, img)
        img = np.where(slab_all, ice * (1 + ice_tex) * sun_gain, img)
        return img, slab_all, shadow_all

    extra = {i: rng.uniform(1.6, 2.2) for i in collapsing}
    g1, g2 = np.sin(elev1) / np.sin(np.deg2rad(22)), np.sin(elev2) / np.sin(np.deg2rad(22))
    img1, _, sh1 = render(static, elev1, az1, g1, {})
    img2, slab2, _ = render(static + detached, elev2, az2, g2, extra)
    _, static_slab2, static_sh2 = render(static, elev2, az2, g2, extra)
    new_slab = slab2 & ~static_slab2
    # Scar on the face where a fragment broke off (unlabelled change).
    sx = rng.uniform(20, w - 20)
    scar = _slab((h, w), float(y_top[0, int(sx)] + face_w / 2), sx, rng.uniform(4, 8), rng.uniform(3, 5), 0.0, 3)
    img2 = np.where(scar, img2 * 1.25, img2)

    # DN scale: T1's floor (where fragments lie; a chip of one terrain) mapped to the drawn
    # real-like mean and sd; T2 by the same map, then its
    # own radiometry (gain, offset, gamma): real dates differ by sun, season and detector.
    m1, s1 = float(img1[floor].mean()), float(img1[floor].std())
    to_dn = lambda img: target_mean + target_sd * (img - m1) / s1  # noqa: E731
    dn1, dn2 = to_dn(img1), to_dn(img2)
    gain, offset, gamma = rng.uniform(0.85, 1.15), rng.uniform(-0.1, 0.1) * target_mean, rng.uniform(0.9, 1.1)
    dn2 = np.clip(dn2, 1, None)
    dn2 = target_mean * (dn2 / target_mean) ** gamma * gain + offset
    # Noise (before resampling, as in a sensor), then both dates resampled: T1 by a small
    # sub-pixel shift, T2 by that plus the misregistration, so both carry interpolation.
    dn1 = dn1 + rng.normal(0, noise_dn, size=dn1.shape)
    dn2 = dn2 + rng.normal(0, noise_dn, size=dn2.shape)
    s_t1 = rng.uniform(-0.5, 0.5, size=2)
    misreg = _draw_shift(rng, max_shift)
    s_t2 = s_t1 + misreg
    dn1 = ndimage.shift(dn1, s_t1, order=1, mode="nearest")
    dn2 = ndimage.shift(dn2, s_t2, order=1, mode="nearest")
    mask = ndimage.shift(new_slab.astype(np.float32), s_t2, order=1, mode="constant") >= 0.5
    t1 = np.clip(np.round(dn1), DN_VALID[0], DN_VALID[1]).astype(np.uint16)
    t2 = np.clip(np.round(dn2), DN_VALID[0], DN_VALID[1]).astype(np.uint16)
    # Shadow changes of fragments that did NOT detach (sun, collapsing relief), T2 geometry.
    sh1_t2 = ndimage.shift(sh1.astype(np.float32), s_t2, order=0, mode="constant") > 0.5
    sh2_t2 = ndimage.shift(static_sh2.astype(np.float32), s_t2, order=0, mode="constant") > 0.5
    shadow_change = (sh1_t2 ^ sh2_t2) & ~mask
    semi = [f[2] for f in static + detached]
    meta = {"seed": seed, "size": size, "n_static": len(static), "n_detached": len(detached),
            "sun_elevation_deg": [float(np.rad2deg(elev1)), float(np.rad2deg(elev2))],
            "sun_azimuth_offset_deg": [float(np.rad2deg(az1)), float(np.rad2deg(az2))],
            "t1_target_mean_dn": float(target_mean), "t1_target_sd_dn": float(target_sd),
            "texture_slope": float(tex_slope),
            "t2_gain": float(gain), "t2_offset_dn": float(offset), "t2_gamma": float(gamma),
            "t2_shift_px": [float(s) for s in misreg], "noise_dn": noise_dn,
            "fragment_semi_axis_px": [float(min(semi)), float(max(semi))],
            "shadow_length_px": [float(min(lengths)), float(max(lengths))],
            "synthetic": True}
    return SyntheticPair(t1, t2, mask.astype(np.uint8), shadow_change, meta)


def write_geotiff(path: Path, array: np.ndarray, origin: tuple[float, float], description: str,
                  tags: dict[str, str]) -> None:
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    profile = {"driver": "GTiff", "height": array.shape[0], "width": array.shape[1], "count": 1,
               "dtype": array.dtype.name, "crs": MARS_STEREO_WKT, "compress": "deflate", "predictor": 2,
               "transform": from_origin(origin[0], origin[1], PIXEL_SIZE_M, PIXEL_SIZE_M)}
    if min(array.shape) >= 256:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(array, 1)
        dst.set_band_description(1, description)
        dst.update_tags(SYNTHETIC="true", NOTE=SYNTHETIC_NOTE, **tags)
    tmp.replace(path)


def write_scenes(out: str | Path, n_scenes: int = 5, size: int = 512, seed: int = 0,
                 fragment_value: int = 1, background_value: int = 0, prefix: str = "synth") -> list[str]:
    """Write ``n_scenes`` SYNTHETIC pairs under ``out/{t1,t2,mask}``; returns the scene keys.

    Scene ``i`` uses seed ``seed * 1000 + i``, so one scene can be regenerated alone.
    """
    out = Path(out)
    keys = []
    manifest = []
    for i in range(n_scenes):
        pair = generate_pair(size=size, seed=seed * 1000 + i)
        key = f"{prefix}_s{i:03d}"
        origin = (200_000.0 + 2_000.0 * i, -3_000_000.0)
        tags = {"scene_seed": str(seed * 1000 + i), "generator": "mars_icefrag.synthetic.write_scenes",
                "generator_version": str(GENERATOR_VERSION)}
        write_geotiff(out / "t1" / f"{key}_T1.tif", pair.t1, origin, "SYNTHETIC hirise_red T1 (pre)", tags)
        write_geotiff(out / "t2" / f"{key}_T2.tif", pair.t2, origin, "SYNTHETIC hirise_red T2 (post)", tags)
        mask = np.where(pair.mask > 0, fragment_value, background_value).astype(np.uint8)
        write_geotiff(out / "mask" / f"{key}_mask.tif", mask, origin,
                      f"SYNTHETIC detached fragments ({fragment_value}=fragment, {background_value}=background)", tags)
        keys.append(key)
        manifest.append({"key": key, **pair.meta, "mask_pixels": int(pair.mask.sum()),
                         "shadow_only_change_pixels": int(pair.shadow_change.sum())})
    (out / "SYNTHETIC.json").write_text(json.dumps({"note": SYNTHETIC_NOTE, "synthetic": True,
                                                    "generator_version": GENERATOR_VERSION, "scenes": manifest},
                                                   indent=1))
    return keys
