"""Reading downloaded HiRISE RDR products: JPEG 2000 by windows, DN → I/F from the label.

Why: an RDR RED product is tens of thousands of pixels on a side; rasterio's JP2OpenJPEG
driver decodes only the window asked for (and its overviews), so a crop never decodes the
whole file. The stored values are DN; the detached label (``{OBS}_{PRODUCT}.LBL``, fetched
by ``crawl --labels``) gives ``I/F = DN * SCALING_FACTOR + OFFSET`` and the special values:
``CORE_NULL`` (no data) and the low/high representation and instrument saturation values,
which are not measurements and come back as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from mars_core.errors import MarsError
from mars_rsl.pds import LabelObject, parse_label

SPECIAL_KEYS = ("CORE_NULL", "CORE_LOW_REPR_SATURATION", "CORE_LOW_INSTR_SATURATION",
                "CORE_HIGH_REPR_SATURATION", "CORE_HIGH_INSTR_SATURATION")


@dataclass(frozen=True)
class RDRScaling:
    scale: float
    offset: float
    special: tuple[float, ...]  # DN values that are not measurements


def scaling_from_label(label: LabelObject | str) -> RDRScaling:
    """DN → I/F scaling and special values from an RDR label (its IMAGE object)."""
    lab = parse_label(label) if isinstance(label, str) else label
    images = lab.find("IMAGE")
    keys = images[0].keys if images else lab.keys
    if "SCALING_FACTOR" not in keys:
        raise MarsError("the RDR label has no SCALING_FACTOR in its IMAGE object")
    special = tuple(float(keys[k]) for k in SPECIAL_KEYS if isinstance(keys.get(k), int | float))
    return RDRScaling(float(keys["SCALING_FACTOR"]), float(keys.get("OFFSET", 0.0)), special)


def read_rdr(jp2: Path, label: Path | None = None, window: Window | None = None) -> np.ndarray:
    """I/F (float32, NaN where the DN is null or saturated) of ``window`` of an RDR product.

    ``label`` defaults to the ``.LBL`` beside the product.
    """
    jp2 = Path(jp2)
    label = Path(label) if label else jp2.with_suffix(".LBL")
    if not label.exists():
        raise MarsError(f"label not found: {label} (crawl with --labels)")
    sc = scaling_from_label(label.read_text(encoding="latin-1"))
    try:
        with rasterio.open(jp2) as ds:
            dn = ds.read(1, window=window)
    except rasterio.errors.RasterioIOError as exc:
        raise MarsError(f"cannot read {jp2}: {exc}") from None
    out = dn.astype(np.float32) * np.float32(sc.scale) + np.float32(sc.offset)
    out[np.isin(dn, np.array(sc.special, dtype=dn.dtype))] = np.nan
    return out
