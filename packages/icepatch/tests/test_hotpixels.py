"""Hot pixels: SYNTHETIC hot pixels injected into REAL sample chips (which have none)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from icepatch_testutil import sample_chips

from mars_core.errors import MarsError
from mars_icepatch.chips import chip_tensor, read_chip
from mars_icepatch.hotpixels import HotPixelParams, find_hot_pixels, inject_hot_pixels, repair_hot_pixels
from mars_icepatch.models import xception_small


def test_clean_real_chips_have_few_detections():
    # the real chips hold no hot pixels; a natural isolated speck near 255 may be flagged
    found = [int(find_hot_pixels(read_chip(c.path))[0].sum()) for c in sample_chips()]
    assert sum(found) <= 10 and sum(f > 0 for f in found) <= 3, found  # measured: 5 pixels, 2 chips of 48


@pytest.mark.parametrize("dtype,scale,value", [(np.uint8, 1, 255), (np.uint16, 4, 1023)])
def test_injected_hot_pixels_are_found_and_repaired(dtype, scale, value):
    rng = np.random.default_rng(0)
    for c in sample_chips()[::4]:  # 12 chips, both classes
        clean = (read_chip(c.path).astype(np.int64) * scale).astype(dtype)  # 16-bit: a 10-bit RDR-like DN range
        hot = inject_hot_pixels(clean, 20, rng, value=value)
        injected = {tuple(p) for p in np.argwhere(hot != clean)}
        fixed = hot.copy()
        pos = {tuple(p) for p in repair_hot_pixels(fixed, fixed != 0)}
        # what was found was injected; a miss only where the chip was already within
        # `contrast` of the maximum (there a hot pixel changes little)
        clean_hot = {tuple(p) for p in np.argwhere(find_hot_pixels(clean)[0])}
        assert pos - clean_hot <= injected, c.file
        headroom = value - clean.astype(np.float64)
        missed = injected - pos
        assert all(headroom[p] < 0.12 * value + 2 * scale for p in missed), (c.file, missed)
        assert len(missed) <= 3, c.file
        err = np.abs(fixed.astype(np.int64) - clean.astype(np.int64))
        assert err.max() < 0.2 * value, c.file  # repaired to about what was there


def test_probability_does_not_jump_with_repair():
    torch.manual_seed(0)
    model = xception_small(widths=[16, 32], stem=8).eval()
    rng = np.random.default_rng(1)
    params = HotPixelParams()
    gaps_on, gaps_off = [], []
    for c in sample_chips()[::6]:
        clean = read_chip(c.path)
        hot = inject_hot_pixels(clean, 20, rng)
        x_clean, _ = chip_tensor(clean, 128, params)
        x_on, n_on = chip_tensor(hot, 128, params)
        x_off, n_off = chip_tensor(hot, 128, None)
        assert n_on >= 19 and n_off == 0
        assert (x_on - x_clean).abs().max() < (x_off - x_clean).abs().max() / 4
        with torch.no_grad():
            p = model(torch.stack([x_clean, x_on, x_off])).softmax(1)[:, 1]
        gaps_on.append(abs(float(p[1] - p[0])))
        gaps_off.append(abs(float(p[2] - p[0])))
    assert max(gaps_on) < 0.01
    assert max(gaps_on) < max(gaps_off)  # the repair is what keeps p still


def test_unknown_setting_is_a_one_line_error():
    with pytest.raises(MarsError, match="near_maxx"):
        HotPixelParams.from_dict({"near_maxx": 0.9})
