"""8-connected components with a minimum size: the unit every event metric counts.

One copy for every task package, so that "an event" means the same thing in icefrag's and
rsl's figures (a diagonal touch joins two pixels; specks under ``min_size`` px are dropped).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

EIGHT = np.ones((3, 3), dtype=bool)


def components(mask: np.ndarray, min_size: int) -> tuple[np.ndarray, int]:
    """Label 8-connected components, dropping those under ``min_size`` px; relabelled 1..n."""
    lab, n = ndimage.label(mask, structure=EIGHT)
    if n == 0:
        return lab, 0
    sizes = np.bincount(lab.ravel())
    keep = sizes >= min_size
    keep[0] = False
    remap = np.zeros(n + 1, dtype=np.int64)
    remap[keep] = np.arange(1, int(keep.sum()) + 1)
    return remap[lab], int(keep.sum())
