"""Hot pixels: isolated, absolutely bright pixels from processing or transmission faults.

Why here, and why repaired rather than masked or flagged: the icepatch paper's first model
reached 13.6 % because such pixels were taken for ice. A per-chunk flag that the verdict
ignores would still let a hot pixel decide the chunk's probability, and masking would hand
the model a hole; so every chip and chunk is repaired BEFORE it is normalised and seen by
the model: a hot pixel is replaced by the median of its 8 neighbours, and the count and
positions are reported. The same function runs on training chips (data source), on chip
folders (``icepatch verdicts``) and on scene chunks (the chunk filter), so training and
prediction see the same input.

A pixel is hot when it stands out from its 8 neighbours' median by at least
``contrast * max_value`` AND is either at or near the sensor's maximum
(``>= near_max * max_value``) or far above the neighbourhood (``>= far_above * max_value``
above that median). Bright ice is spatially extended, so its neighbourhood median is bright
too and it is not isolated. ``contrast`` 0.12 (31 DN in 8 bits) was chosen on the shared
chips (every third of the 1,503): it finds 98.9 % of 20 SYNTHETIC max-value pixels injected
per chip (the misses sit on spots already within 31 DN of the maximum, where a hot pixel
changes little) and flags 15 natural pixels in 10 of 501 clean chips (isolated specks of
at least 242 DN), which the repair smooths into their neighbours; 0.08 found 99.7 % but
flagged 81 natural pixels in 25 chips. Invalid pixels (RDR null 0) are never hot and do not count as
neighbours' brightness beyond their value (0), which makes a pixel next to a no-data wedge
look isolated only if it is itself near the maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: The largest DN of a 16-bit HiRISE RDR RED product (10-bit data; 1022/1023 are the
#: saturation values of the RDR label), used when ``max_value`` is not configured.
RDR_MAX_DN = 1023


@dataclass(frozen=True)
class HotPixelParams:
    """Detection thresholds as fractions of the sensor's maximum value (see module docstring)."""

    max_value: float | None = None  # None: 255 for 8-bit, 1023 (RDR) for 16-bit, 1.0 for float
    near_max: float = 0.95
    contrast: float = 0.12
    far_above: float = 0.6

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> HotPixelParams:
        from mars_core.errors import MarsError

        params = dict(params or {})
        unknown = sorted(set(params) - {"max_value", "near_max", "contrast", "far_above"})
        if unknown:
            raise MarsError(f"unknown hot-pixel setting(s) {', '.join(unknown)}; "
                            "allowed: max_value, near_max, contrast, far_above")
        return cls(**params)

    def maximum(self, dtype: np.dtype) -> float:
        if self.max_value is not None:
            return float(self.max_value)
        if dtype == np.uint8:
            return 255.0
        if np.issubdtype(dtype, np.integer):
            return float(RDR_MAX_DN)
        return 1.0


def neighbour_median(img: np.ndarray) -> np.ndarray:
    """Median of the 8 neighbours of every pixel (edges replicated), as float32.

    Eight shifted views and a partial sort: no scipy, and about 40 MB for a 1024² chunk."""
    a = np.pad(img.astype(np.float32, copy=False), 1, mode="edge")
    h, w = img.shape
    shifts = [a[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3) if (dy, dx) != (1, 1)]
    stack = np.stack(shifts)
    part = np.partition(stack, (3, 4), axis=0)
    return 0.5 * (part[3] + part[4])


def find_hot_pixels(img: np.ndarray, valid: np.ndarray | None = None,
                    params: HotPixelParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(hot [h,w] bool, neighbour median [h,w])`` for one band ``img``."""
    p = params or HotPixelParams()
    top = p.maximum(img.dtype)
    v = img.astype(np.float32, copy=False)
    med = neighbour_median(img)
    excess = v - med
    hot = (excess >= p.contrast * top) & ((v >= p.near_max * top) | (excess >= p.far_above * top))
    if valid is not None:
        hot &= valid
    return hot, med


def repair_hot_pixels(img: np.ndarray, valid: np.ndarray | None = None,
                      params: HotPixelParams | None = None) -> np.ndarray:
    """Replace hot pixels of ``img`` IN PLACE by their neighbour median; return their
    positions as an [n, 2] array of (row, col)."""
    hot, med = find_hot_pixels(img, valid, params)
    if hot.any():
        img[hot] = np.round(med[hot]).astype(img.dtype) if np.issubdtype(img.dtype, np.integer) else med[hot]
    return np.argwhere(hot)


def inject_hot_pixels(img: np.ndarray, n: int, rng: np.random.Generator, value: float | None = None,
                      margin: int = 1) -> np.ndarray:
    """SYNTHETIC test/benchmark helper: a copy of ``img`` with ``n`` isolated pixels set to
    ``value`` (default: the dtype's maximum) at random distinct positions."""
    out = img.copy()
    h, w = img.shape
    if value is None:
        value = float(np.iinfo(img.dtype).max) if np.issubdtype(img.dtype, np.integer) else 1.0
    flat = rng.choice((h - 2 * margin) * (w - 2 * margin), size=n, replace=False)
    rows, cols = flat // (w - 2 * margin) + margin, flat % (w - 2 * margin) + margin
    out[rows, cols] = value
    return out
