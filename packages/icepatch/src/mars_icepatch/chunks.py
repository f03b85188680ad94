"""The chunk filter of ``mars-core predict icepatch``: black centre, then hot pixels.

* Black centre (the paper drops chunks with black pixels around their centre: they are cut
  by the image's no-data edge and the patch of interest is likely cut too): the central box
  of ``centre`` x the chunk's edge is inspected; the chunk is skipped when more than
  ``max_black`` of its pixels are black (<= ``black``) or invalid (RDR null 0).
* Hot pixels (see :mod:`mars_icepatch.hotpixels`): repaired in place, so the model never
  sees them, and reported on the chunk record: ``hot_pixels`` (count) and
  ``hot_positions`` ("row:col" in SCENE pixels would need the chunk origin, which the
  filter does not get, so positions are inside the chunk: add the record's x, y).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mars_core.errors import MarsError
from mars_icepatch.hotpixels import HotPixelParams, repair_hot_pixels

#: At most this many positions are written per chunk (the count is always complete).
MAX_POSITIONS = 50
FILTER_KEYS = {"centre", "black", "max_black", "hot_pixels"}


def black_centre_and_hot_pixels(chunk: np.ndarray, valid: np.ndarray, params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - FILTER_KEYS)
    if unknown:
        raise MarsError(f"unknown predict.filter setting(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(FILTER_KEYS))}")
    if chunk.shape[0] != 1:
        raise MarsError(f"icepatch takes grayscale (one band) images, got {chunk.shape[0]} bands")
    img = chunk[0]
    h, w = img.shape
    frac = float(params.get("centre", 0.25))
    bh, bw = max(1, round(h * frac)), max(1, round(w * frac))
    y0, x0 = (h - bh) // 2, (w - bw) // 2
    box = img[y0:y0 + bh, x0:x0 + bw]
    black = (box <= params.get("black", 0)) | ~valid[y0:y0 + bh, x0:x0 + bw]
    if black.mean() > float(params.get("max_black", 0.01)):
        return {"skip": "black centre"}
    hp = params.get("hot_pixels", {})
    if hp is False:
        return {"skip": None}
    pos = repair_hot_pixels(img, valid, HotPixelParams.from_dict(hp if isinstance(hp, dict) else {}))
    return {"skip": None, "hot_pixels": int(len(pos)),
            "hot_positions": ";".join(f"{r}:{c}" for r, c in pos[:MAX_POSITIONS].tolist())}
