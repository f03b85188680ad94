"""A classical baseline: image statistics + gradient boosting (``bench_icepatch.py``'s
"image-statistics GBM" row).

Why: a learned CNN should be shown beside something cheap that is not trivial. The features
are computed from the pixels only (hot pixels repaired, browse stretch DN / 255, the same
input as the CNN at the chip's own 227 px); latitude and every other column of labels.csv
are left out on purpose (the "polar look" trap, README).

Per chip (52 numbers): mean, sd and 7 percentiles of the valid pixels; a 16-bin histogram;
at 4 scales (block means of 1, 2, 4, 8 px) the mean, sd and 90th percentile of the gradient
magnitude, the mean absolute Laplacian and the gradient-to-contrast ratio; the share of the
Fourier power in 6 radial bands. Classifier: scikit-learn's HistGradientBoostingClassifier
with balanced class weights; its decision threshold is chosen on validation chips like the
CNN's (:func:`mars_icepatch.threshold.choose_threshold`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mars_icepatch.chips import Chip, read_chip, stretch
from mars_icepatch.hotpixels import HotPixelParams, repair_hot_pixels

SCALES = (1, 2, 4, 8)
BANDS = ((1, 3), (3, 6), (6, 12), (12, 25), (25, 50), (50, 1e9))
PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def chip_features(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Features of one stretched chip ``x`` (float, [0, 1]) with its valid-pixel mask."""
    v = x[valid] if valid.sum() > 100 else x.ravel()
    f: list[float] = [float(v.mean()), float(v.std()), *np.percentile(v, PERCENTILES).tolist()]
    f += (np.histogram(v, bins=16, range=(0.0, 1.0))[0] / v.size).tolist()
    h, w = x.shape
    for s in SCALES:
        xs = x[: h // s * s, : w // s * s].reshape(h // s, s, w // s, s).mean(axis=(1, 3))
        gx, gy = np.diff(xs, axis=1)[:-1], np.diff(xs, axis=0)[:, :-1]
        g = np.sqrt(gx**2 + gy**2)
        lap = 4 * xs[1:-1, 1:-1] - xs[:-2, 1:-1] - xs[2:, 1:-1] - xs[1:-1, :-2] - xs[1:-1, 2:]
        f += [float(g.mean()), float(g.std()), float(np.percentile(g, 90)), float(np.abs(lap).mean()),
              float(g.mean() / (v.std() + 1e-3))]
    power = np.abs(np.fft.fftshift(np.fft.fft2(x - x.mean()))) ** 2
    yy, xx = np.indices(power.shape)
    r = np.hypot(yy - h / 2, xx - w / 2)
    total = float(power.sum()) + 1e-9
    f += [float(power[(r >= a) & (r < b)].sum() / total) for a, b in BANDS]
    return np.asarray(f, dtype=np.float64)


def feature_matrix(chips: Sequence[Chip], mode: str = "browse") -> np.ndarray:
    """[n_chips, n_features], each chip read, hot pixels repaired and stretched as for the CNN."""
    rows = []
    params = HotPixelParams()
    for c in chips:
        raw = read_chip(c.path).copy()
        repair_hot_pixels(raw, raw != 0, params)
        x, valid = stretch(raw, mode)
        rows.append(chip_features(x, valid))
    return np.stack(rows)


def fit_gbm(features: np.ndarray, labels: np.ndarray, seed: int = 0):  # type: ignore[no-untyped-def]
    """Gradient boosting on the features (balanced class weights), fitted on training chips."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, class_weight="balanced",
                                          random_state=seed).fit(features, labels)
