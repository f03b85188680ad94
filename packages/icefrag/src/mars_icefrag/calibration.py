"""Image statistics used to calibrate the SYNTHETIC generator against real HiRISE imagery.

Why: a model trained on SYNTHETIC scenes only transfers to real HiRISE pairs if the
scenes look like real data in the ways a CNN sees: grey-level distribution, texture across
scales, and pixel noise. The same functions measure real polar chips and SYNTHETIC
scenes, so the comparison in BENCHMARK.md is like for like
(``benchmarks/bench_icefrag_calibration.py``).

Measured, per image (pixels at or below ``floor`` are no-data and left out):

* ``mean``, ``sd``, ``p2``, ``p50``, ``p98``: DN distribution of the valid pixels;
* ``noise``: pixel noise sigma by Immerkaer's method (the Laplacian-difference kernel
  cancels smooth structure; sigma = sqrt(pi/2) / (6 (H-2)(W-2)) * sum |I * N|);
* ``slope``: the log-log slope of the radially averaged power spectrum between
  ``F_LOW`` and ``F_HIGH`` cycles/px (a fractal surface has P(f) ~ f^slope; the band
  avoids the lowest frequencies, dominated by the scene layout, and the highest, where
  JPEG compression of the real chips removes power). Scale-free: it does not depend on
  the pixel size, which differs between browse chips and 0.25 m products;
* ``acf_length``: the lag (px) at which the autocorrelation of the mean-removed image
  first falls below 1/e (depends on the pixel size; reported, not matched).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

F_LOW, F_HIGH = 0.02, 0.2
_IMMERKAER = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_sigma(image: np.ndarray) -> float:
    """Immerkaer's fast noise estimate (sigma of additive white noise, in DN)."""
    a = np.asarray(image, dtype=np.float64)
    if min(a.shape) < 3:
        raise ValueError("image must be at least 3 x 3")
    lap = ndimage.convolve(a, _IMMERKAER, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) / (6 * lap.size) * np.abs(lap).sum())


def spectral_slope(image: np.ndarray, f_low: float = F_LOW, f_high: float = F_HIGH) -> float:
    """Slope of log P(f) against log f of the radially averaged power spectrum (Hann window)."""
    a = np.asarray(image, dtype=np.float64)
    a = a - a.mean()
    h, w = a.shape
    win = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fftshift(np.fft.fft2(a * win))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    f = np.hypot(fy, fx)
    edges = np.geomspace(f_low, f_high, 13)
    centres, means = [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        ring = (f >= lo) & (f < hi)
        if ring.any():
            centres.append(np.sqrt(lo * hi))
            means.append(power[ring].mean())
    if len(centres) < 3:
        raise ValueError("image too small for the frequency band")
    return float(np.polyfit(np.log(centres), np.log(np.maximum(means, 1e-30)), 1)[0])


def acf_length(image: np.ndarray) -> float:
    """First lag (px, radially averaged) where the autocorrelation drops below 1/e."""
    a = np.asarray(image, dtype=np.float64)
    a = a - a.mean()
    spec = np.abs(np.fft.fft2(a, s=(2 * a.shape[0], 2 * a.shape[1]))) ** 2
    acf = np.fft.ifft2(spec).real
    acf = acf / acf[0, 0]
    n = min(a.shape) // 2
    yy, xx = np.mgrid[0:n, 0:n]
    r = np.hypot(yy, xx).round().astype(int)
    sums = np.bincount(r.ravel(), acf[:n, :n].ravel())
    counts = np.bincount(r.ravel())
    radial = sums[:n] / np.maximum(counts[:n], 1)
    below = np.nonzero(radial < 1 / np.e)[0]
    return float(below[0]) if below.size else float(n)


def image_stats(image: np.ndarray, floor: float = 3.0) -> dict[str, float]:
    """DN, noise and texture statistics of one single-band image (see the module docstring)."""
    a = np.asarray(image, dtype=np.float64)
    v = a[a > floor]
    if v.size < 16:
        raise ValueError("fewer than 16 valid pixels")
    p2, p50, p98 = np.percentile(v, [2, 50, 98])
    filled = np.where(a > floor, a, np.median(v))  # no-data wedges would dominate the spectrum
    return {"mean": float(v.mean()), "sd": float(v.std()), "p2": float(p2), "p50": float(p50), "p98": float(p98),
            "noise": noise_sigma(filled), "slope": spectral_slope(filled), "acf_length": acf_length(filled)}
