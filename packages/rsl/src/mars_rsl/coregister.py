"""Tie-point coregistration of a site's time series onto a reference image.

Why this design:

* Tie points come from SIFT (OpenCV, patent-free since 2020; no learned weights to
  download) on a contrast-equalised 8-bit copy of each image (CLAHE), so a change of
  illumination between dates (gain, offset, gamma) moves few keypoints. Matches pass Lowe's
  ratio test (0.75).
* The transform is fitted robustly (RANSAC) and refined on the inliers (OpenCV's
  ``estimateAffine2D`` with Levenberg-Marquardt refinement, or ``findHomography``); the
  residual RMSE is measured on the inliers in reference pixels. Orbital images of one site
  at HiRISE's map projection differ mainly by translation, a small rotation/scale and
  shear, so ``affine`` is the default; ``homography`` is there for off-nadir pairs.
* An image that cannot be registered (too few inliers, or too little overlap with the
  reference) gets NO output: a wrongly warped date would be worse than a missing one. The
  other images are still registered and reported; the command then fails (exit 2) naming
  each refused image on one line.
* The output is the input resampled (bilinear) onto the reference grid: same shape, CRS
  and transform as the reference (so ``mars_core.geodata`` stacks the dates without
  resampling again), pixels outside the input's footprint set to nodata. Files are written
  under a temporary name and renamed; an existing output is never overwritten silently.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from mars_core.errors import MarsError

Model = Literal["affine", "homography"]


@dataclass
class CoregResult:
    input: str
    output: str | None
    matches: int
    inliers: int
    rmse_px: float | None
    overlap: float | None
    model: str
    matrix: list[list[float]] | None = None
    error: str | None = None
    extra: dict[str, float] = field(default_factory=dict)


def read_band(path: Path) -> tuple[np.ndarray, dict, float | None]:
    """First band as float32, the raster profile, and its nodata value."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                return ds.read(1).astype(np.float32), dict(ds.profile), ds.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise MarsError(f"cannot read raster {path}: {exc}") from None


def to_uint8(img: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Percentile stretch of the valid pixels, then CLAHE: illumination-robust input for SIFT."""
    vals = img[valid]
    lo, hi = (np.percentile(vals, [1, 99]) if vals.size else (0.0, 1.0))
    out = np.clip((img - lo) / max(float(hi - lo), 1e-6) * 255.0, 0, 255).astype(np.uint8)
    out[~valid] = 0
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(out)


def _valid(img: np.ndarray, nodata: float | None) -> np.ndarray:
    v = np.isfinite(img)
    if nodata is not None:
        v &= img != nodata
    return v


def tie_points(ref8: np.ndarray, mov8: np.ndarray, ref_mask: np.ndarray, mov_mask: np.ndarray,
               ratio: float = 0.75, n_features: int = 8000) -> tuple[np.ndarray, np.ndarray]:
    """Matched keypoint coordinates (moving, reference), each [N, 2] in pixels (x, y)."""
    sift = cv2.SIFT_create(nfeatures=n_features)
    # keypoints on the edge of nodata are artefacts of the footprint, not of the ground
    kr = cv2.erode(ref_mask.astype(np.uint8), np.ones((7, 7), np.uint8))
    km = cv2.erode(mov_mask.astype(np.uint8), np.ones((7, 7), np.uint8))
    kp_r, des_r = sift.detectAndCompute(ref8, kr)
    kp_m, des_m = sift.detectAndCompute(mov8, km)
    if des_r is None or des_m is None or len(kp_r) < 2 or len(kp_m) < 2:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(des_m, des_r, k=2)
    good = [m for m, n in (p for p in pairs if len(p) == 2) if m.distance < ratio * n.distance]
    src = np.float32([kp_m[m.queryIdx].pt for m in good]).reshape(-1, 2)
    dst = np.float32([kp_r[m.trainIdx].pt for m in good]).reshape(-1, 2)
    return src, dst


def fit(src: np.ndarray, dst: np.ndarray, model: Model, threshold: float) -> tuple[np.ndarray | None, np.ndarray]:
    """RANSAC fit moving→reference; (3x3 matrix or None, inlier flags)."""
    if len(src) < 4:
        return None, np.zeros(len(src), bool)
    if model == "affine":
        m, inl = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                      maxIters=5000, confidence=0.999, refineIters=20)
        if m is None:
            return None, np.zeros(len(src), bool)
        return np.vstack([m, [0, 0, 1]]), inl.ravel().astype(bool)
    h, inl = cv2.findHomography(src, dst, cv2.RANSAC, threshold, maxIters=5000, confidence=0.999)
    if h is None:
        return None, np.zeros(len(src), bool)
    return h, inl.ravel().astype(bool)


def apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ matrix.T
    return p[:, :2] / p[:, 2:3]


def register_image(ref: np.ndarray, ref_valid: np.ndarray, mov: np.ndarray, mov_valid: np.ndarray,
                   model: Model = "affine", threshold: float = 1.5) -> tuple[np.ndarray | None, int, int, float | None]:
    """(matrix moving→reference, matches, inliers, inlier RMSE in px)."""
    src, dst = tie_points(to_uint8(ref, ref_valid), to_uint8(mov, mov_valid), ref_valid, mov_valid)
    matrix, inl = fit(src, dst, model, threshold)
    if matrix is None or not inl.any():
        return None, len(src), 0, None
    res = apply(matrix, src[inl]) - dst[inl]
    return matrix, len(src), int(inl.sum()), float(np.sqrt((res**2).sum(axis=1).mean()))


def overlap_fraction(matrix: np.ndarray, mov_shape: tuple[int, int], ref_shape: tuple[int, int]) -> float:
    """Fraction of the reference covered by the moving image's footprint."""
    h, w = mov_shape
    corners = apply(matrix, np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    mask = np.zeros(ref_shape, np.uint8)
    cv2.fillPoly(mask, [np.round(corners).astype(np.int32)], 1)
    return float(mask.mean())


def warp(mov: np.ndarray, matrix: np.ndarray, ref_shape: tuple[int, int], fill: float) -> np.ndarray:
    h, w = ref_shape
    flags = cv2.INTER_LINEAR
    if np.allclose(matrix[2], [0, 0, 1]):
        return cv2.warpAffine(mov, matrix[:2], (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    return cv2.warpPerspective(mov, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)


def coregister(reference: Path, inputs: list[Path], out_dir: Path, model: Model = "affine", min_inliers: int = 12,
               min_overlap: float = 0.2, threshold: float = 1.5, overwrite: bool = False) -> list[CoregResult]:
    """Register every input onto the reference; write ``{stem}.coreg.tif`` + ``coregistration.{csv,json}``.

    Raises MarsError (after writing what succeeded and the reports) when an image is refused.
    """
    if model not in ("affine", "homography"):
        raise MarsError(f"--model must be affine or homography, got '{model}'")
    if not inputs:
        raise MarsError("give at least one --input")
    ref, ref_prof, ref_nd = read_band(reference)
    ref_valid = _valid(ref, ref_nd)
    out_dir.mkdir(parents=True, exist_ok=True)
    outs = [out_dir / f"{Path(p).stem}.coreg.tif" for p in inputs]
    if len(set(outs)) != len(outs):
        raise MarsError("two --input files have the same name stem; their outputs would collide")
    if not overwrite:
        taken = [str(o) for o in outs if o.exists()]
        if taken:
            raise MarsError(f"output exists (use --overwrite): {', '.join(taken)}")
    results: list[CoregResult] = []
    for path, out in zip(inputs, outs, strict=True):
        mov, mov_prof, mov_nd = read_band(path)
        mov_valid = _valid(mov, mov_nd)
        matrix, n_match, n_inl, rmse = register_image(ref, ref_valid, mov, mov_valid, model, threshold)
        res = CoregResult(str(path), None, n_match, n_inl, rmse, None, model,
                          None if matrix is None else matrix.tolist())
        if matrix is None or n_inl < min_inliers:
            res.error = f"{n_inl} inlier tie points, fewer than {min_inliers}"
        else:
            res.overlap = overlap_fraction(matrix, mov.shape, ref.shape)
            if res.overlap < min_overlap:
                res.error = f"overlap with the reference {res.overlap:.0%} is below {min_overlap:.0%}"
        if res.error is None:
            fill = float(mov_nd) if mov_nd is not None else (float(ref_nd) if ref_nd is not None else 0.0)
            # resample validity too, so the footprint edge and input nodata become nodata
            data = warp(np.where(mov_valid, mov, 0).astype(np.float32), matrix, ref.shape, 0.0)
            cover = warp(mov_valid.astype(np.float32), matrix, ref.shape, 0.0) > 0.999
            data = np.where(cover, data, fill)
            _write(out, data, ref_prof, fill, np.dtype(mov_prof["dtype"]))
            res.output = str(out)
        results.append(res)
    _reports(results, out_dir)
    bad = [r for r in results if r.error]
    if bad:
        raise MarsError("; ".join(f"{Path(r.input).name}: {r.error} (no output written)" for r in bad))
    return results


def _write(out: Path, data: np.ndarray, ref_prof: dict, fill: float, dtype: np.dtype) -> None:
    prof = {k: ref_prof[k] for k in ("crs", "transform", "width", "height") if k in ref_prof}
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.round(data), info.min, info.max)
    prof.update(driver="GTiff", count=1, dtype=dtype.name, nodata=fill, compress="deflate")
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(tmp, "w", **prof) as ds:
            ds.write(data.astype(dtype), 1)
    os.replace(tmp, out)


def _reports(results: list[CoregResult], out_dir: Path) -> None:
    rows = [asdict(r) for r in results]
    tmp = out_dir / "coregistration.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, out_dir / "coregistration.json")
    tmp = out_dir / "coregistration.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["input", "output", "matches", "inliers", "rmse_px", "overlap", "model", "error"])
        for r in results:
            w.writerow([r.input, r.output or "", r.matches, r.inliers,
                        "" if r.rmse_px is None else f"{r.rmse_px:.4f}",
                        "" if r.overlap is None else f"{r.overlap:.4f}", r.model, r.error or ""])
    os.replace(tmp, out_dir / "coregistration.csv")
