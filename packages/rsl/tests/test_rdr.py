"""RDR JPEG 2000 read by windows, DN → I/F and special values from the label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from mars_rsl.crawl.mock import product_label
from mars_rsl.rdr import read_rdr, scaling_from_label


def test_label_scaling_and_window_read(tmp_path: Path) -> None:
    dn = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 900 + 100)
    dn[0, 0], dn[1, 1], dn[2, 2] = 0, 1023, 2  # null, high and low saturation
    jp2 = tmp_path / "ESP_000001_1700_RED.JP2"
    with rasterio.open(jp2, "w", driver="JP2OpenJPEG", width=64, height=64, count=1, dtype="uint16",
                       QUALITY=100, REVERSIBLE="YES") as ds:
        ds.write(dn, 1)
    (tmp_path / "ESP_000001_1700_RED.LBL").write_text(product_label("ESP_000001_1700", "RED", 0))
    sc = scaling_from_label(product_label("ESP_000001_1700", "RED", 0))
    assert sc.scale == 2.0e-5 and {0.0, 1.0, 2.0, 1022.0, 1023.0} == set(sc.special)
    full = read_rdr(jp2)
    assert np.isnan(full[0, 0]) and np.isnan(full[1, 1]) and np.isnan(full[2, 2])
    np.testing.assert_allclose(full[5, 7], dn[5, 7] * 2.0e-5, rtol=1e-6)
    win = read_rdr(jp2, window=Window(10, 20, 16, 8))
    assert win.shape == (8, 16)
    np.testing.assert_allclose(win, dn[20:28, 10:26] * 2.0e-5, rtol=1e-6)
