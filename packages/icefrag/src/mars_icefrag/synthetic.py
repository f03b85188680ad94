"""SYNTHETIC bitemporal scene generator for icefrag (no public training set exists).

Everything written here is labelled SYNTHETIC (GeoTIFF tags, band descriptions, README).
The scenes are built to be hard in the ways the real task is hard, not to look real:

* a scarp crossing the scene, lit from one side (the sun is "up" in image coordinates
  and slightly to the left), with layered deposits on its face and a textured floor;
* slab-like ice fragments (rotated super-ellipses) on the floor, each casting a shadow
  BELOW it (+y) whose length is ``height / tan(sun elevation)``;
* between the dates some fragments detach and fall (present only in T2): their slab and
  shadow are new; only the slab is labelled as change;
* other shadows change with no detachment: the sun elevation differs between dates, so
  every shadow changes length, and a few static fragments shift their shadow edge more
  (partial collapse of small relief); those pixels are NOT in the mask;
* a small scar appears on the scarp face where a fragment came from (unlabelled);
* radiometry differs between dates (gain, offset, sun-dependent brightness), T2 is
  misregistered by up to ``max_shift`` px (sub-pixel, bilinear) and noise is added.

Output: uint16 GeoTIFFs (values within 12 bits) and uint8 masks, 0.25 m/pixel, on the
Mars sphere in an oblique stereographic projection (WKT below), in ``t1/``, ``t2/`` and
``mask/`` with matching names.
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
MAX_DN = 4095
SYNTHETIC_NOTE = "SYNTHETIC scene from mars_icefrag.synthetic; not HiRISE data"


@dataclass
class SyntheticPair:
    t1: np.ndarray  # uint16 [H,W]
    t2: np.ndarray  # uint16 [H,W]
    mask: np.ndarray  # uint8 [H,W], 1 = detached fragment (in T2 geometry)
    shadow_change: np.ndarray  # bool [H,W]: shadow in one date only, outside the mask
    meta: dict = field(default_factory=dict)


def _texture(rng: np.random.Generator, shape: tuple[int, int], scales=(1.5, 4, 12), weights=(0.3, 0.4, 0.6)):
    out = np.zeros(shape, dtype=np.float64)
    for s, w in zip(scales, weights, strict=False):
        n = ndimage.gaussian_filter(rng.normal(size=shape), s)
        out += w * n / (n.std() + 1e-9)
    return out


def _slab(shape: tuple[int, int], cy: float, cx: float, a: float, b: float, angle: float, p: float) -> np.ndarray:
    """Super-ellipse footprint: a slab with rounded corners (p=2 ellipse, large p rectangle)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    return (np.abs(u / a) ** p + np.abs(v / b) ** p) <= 1.0


def _shadow(fp: np.ndarray, length: float, dx_per_dy: float) -> np.ndarray:
    """Pixels shaded by a slab: the footprint swept down by ``length`` px, minus the slab."""
    sh = np.zeros_like(fp)
    n = int(np.ceil(length))
    for k in range(1, n + 1):
        sh |= ndimage.shift(fp.astype(np.float32), (k, k * dx_per_dy), order=0) > 0.5
    return sh & ~fp


def _fragment(shape: tuple[int, int], frag: tuple, shadow_len: float, skew: float):
    """Slab and shadow of one fragment, computed in a local window (scenes may be large)."""
    cy, cx, a, b, ang, p, _height = frag
    r = int(np.ceil(max(a, b))) + 2
    pad = int(np.ceil(shadow_len * (1 + abs(skew)))) + 2
    y0, y1 = max(0, int(cy) - r), min(shape[0], int(cy) + r + pad)
    x0, x1 = max(0, int(cx) - r - pad), min(shape[1], int(cx) + r + pad)
    fp = _slab((y1 - y0, x1 - x0), cy - y0, cx - x0, a, b, ang, p)
    sh = _shadow(fp, shadow_len, skew)
    return (slice(y0, y1), slice(x0, x1)), fp, sh


def generate_pair(size: int = 512, seed: int = 0, n_static: int | None = None, n_detached: int | None = None,
                  max_shift: float = 0.75, noise: float = 18.0) -> SyntheticPair:
    """One SYNTHETIC scene pair (see the module docstring for what is simulated)."""
    rng = np.random.default_rng(seed)
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    n_static = n_static if n_static is not None else int(rng.integers(6, 12) * (size / 512) ** 2) + 3
    n_detached = n_detached if n_detached is not None else int(rng.integers(3, 6) * (size / 512) ** 2) + 1

    # Scarp: plateau above, face in between, floor below.
    wave = np.sin(xx[0] / w * 2 * np.pi * rng.uniform(0.5, 1.5) + rng.uniform(0, 6))
    top = h * rng.uniform(0.18, 0.3) + h * 0.04 * wave
    face_w = h * rng.uniform(0.08, 0.14)
    y_top = top[None, :]
    y_bot = y_top + face_w
    plateau = yy < y_top
    face = (yy >= y_top) & (yy < y_bot)
    floor = yy >= y_bot
    tex = _texture(rng, (h, w))
    layers = np.sin((yy - y_top) / rng.uniform(2.5, 5) * np.pi) * 0.5 + _texture(rng, (h, w), (1.0,), (0.3,))
    side_light = 0.85 + 0.3 * xx / w  # lit from one side

    def base(sun_gain: float) -> np.ndarray:
        img = np.where(plateau, 2300 + 120 * tex, 0.0)
        img = np.where(face, (1500 + 200 * layers + 60 * tex) * side_light, img)
        img = np.where(floor, 1250 + 90 * tex, img)
        return img * sun_gain

    # Fragments on the floor, in the debris zone below the face.
    def place(n: int) -> list[tuple]:
        out = []
        for _ in range(n):
            cx = rng.uniform(10, w - 10)
            ylo = float(y_bot[0, int(np.clip(cx, 0, w - 1))]) + 6
            cy = rng.uniform(ylo, min(h - 12, ylo + h * 0.45))
            a, b = rng.uniform(3, 9), rng.uniform(2.5, 6)
            out.append((cy, cx, a, b, rng.uniform(0, np.pi), rng.uniform(2.5, 6), rng.uniform(0.5, 1.0) * b))
        return out

    static = place(n_static)
    detached = place(n_detached)
    elev1, elev2 = np.deg2rad(rng.uniform(18, 26)), np.deg2rad(rng.uniform(12, 20))
    skew = rng.uniform(-0.25, 0.25)
    collapsing = set(rng.choice(len(static), size=max(1, len(static) // 4), replace=False).tolist())

    def render(frags: list[tuple], elev: float, sun_gain: float, extra_height: dict[int, float]):
        img = base(sun_gain)
        shadow_all = np.zeros((h, w), dtype=bool)
        slab_all = np.zeros((h, w), dtype=bool)
        for i, frag in enumerate(frags):
            length = frag[6] * extra_height.get(i, 1.0) / np.tan(elev)
            win, fp, sh = _fragment((h, w), frag, length, skew)
            shadow_all[win] |= sh
            slab_all[win] |= fp
        shadow_all &= ~slab_all
        lit = 2900 + 150 * np.clip((yy % 7) / 7.0, 0, 1)  # bright ice with a little structure
        img = np.where(shadow_all & ~slab_all, 0.35 * img, img)
        img = np.where(slab_all, lit * sun_gain, img)
        return img, slab_all, shadow_all

    n_s = len(static)
    extra = {i: rng.uniform(1.6, 2.2) for i in collapsing}
    g1, g2 = np.sin(elev1) / np.sin(np.deg2rad(22)), np.sin(elev2) / np.sin(np.deg2rad(22))
    img1, _, sh1 = render(static, elev1, g1, {})
    img2, slab2, sh2 = render(static + detached, elev2, g2, extra)
    _, static_slab2, static_sh2 = render(static, elev2, g2, extra)
    new_slab = slab2 & ~static_slab2
    # Scar on the face where a fragment broke off (unlabelled change).
    sx = rng.uniform(20, w - 20)
    scar = _slab((h, w), float(y_top[0, int(sx)] + face_w / 2), sx, rng.uniform(4, 8), rng.uniform(3, 5), 0.0, 3)
    img2 = np.where(scar, img2 * 1.25, img2)

    # Radiometry, misregistration, noise.
    gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-120, 120)
    img2 = img2 * gain + offset
    shift = rng.uniform(-max_shift, max_shift, size=2)
    img2 = ndimage.shift(img2, shift, order=1, mode="nearest")
    mask = ndimage.shift(new_slab.astype(np.float32), shift, order=1, mode="constant") >= 0.5
    img1 = img1 + rng.normal(0, noise, size=img1.shape) + rng.normal(0, 1, img1.shape) * np.sqrt(np.abs(img1)) * 0.3
    img2 = img2 + rng.normal(0, noise, size=img2.shape) + rng.normal(0, 1, img2.shape) * np.sqrt(np.abs(img2)) * 0.3
    t1 = np.clip(np.round(img1), 0, MAX_DN).astype(np.uint16)
    t2 = np.clip(np.round(img2), 0, MAX_DN).astype(np.uint16)
    # Shadow changes of fragments that did NOT detach (sun elevation, collapsing relief).
    shadow_change = (sh1 ^ static_sh2) & ~slab2 & ~mask
    meta = {"seed": seed, "size": size, "n_static": n_s, "n_detached": len(detached),
            "sun_elevation_deg": [float(np.rad2deg(elev1)), float(np.rad2deg(elev2))],
            "t2_gain": float(gain), "t2_offset_dn": float(offset), "t2_shift_px": [float(s) for s in shift],
            "noise_dn": noise, "synthetic": True}
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
        tags = {"scene_seed": str(seed * 1000 + i), "generator": "mars_icefrag.synthetic.write_scenes"}
        write_geotiff(out / "t1" / f"{key}_T1.tif", pair.t1, origin, "SYNTHETIC hirise_red T1 (pre)", tags)
        write_geotiff(out / "t2" / f"{key}_T2.tif", pair.t2, origin, "SYNTHETIC hirise_red T2 (post)", tags)
        mask = np.where(pair.mask > 0, fragment_value, background_value).astype(np.uint8)
        write_geotiff(out / "mask" / f"{key}_mask.tif", mask, origin,
                      f"SYNTHETIC detached fragments ({fragment_value}=fragment, {background_value}=background)", tags)
        keys.append(key)
        manifest.append({"key": key, **pair.meta, "mask_pixels": int(pair.mask.sum()),
                         "shadow_only_change_pixels": int(pair.shadow_change.sum())})
    (out / "SYNTHETIC.json").write_text(json.dumps({"note": SYNTHETIC_NOTE, "scenes": manifest}, indent=1))
    return keys
