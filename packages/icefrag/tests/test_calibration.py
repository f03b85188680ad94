"""Round 2, item 3: the statistics used for calibration, and the SYNTHETIC generator against
the ranges measured on real polar chips (the numbers are in synthetic.py and BENCHMARK.md)."""

from __future__ import annotations

import numpy as np
import pytest

from mars_icefrag import synthetic as syn
from mars_icefrag.calibration import acf_length, image_stats, noise_sigma, spectral_slope


def test_noise_estimate_and_spectral_slope_recover_known_values() -> None:
    rng = np.random.default_rng(0)
    smooth = 10 * syn._fractal(rng, (256, 256), -3.0, outer_px=1e6)
    noisy = smooth + rng.normal(0, 2.0, smooth.shape)
    assert noise_sigma(noisy) == pytest.approx(2.0, rel=0.15)  # the smooth field hardly leaks in
    assert noise_sigma(smooth) < 0.8  # a rough texture leaks a little into the estimate
    assert spectral_slope(smooth) == pytest.approx(-3.0, abs=0.3)
    assert spectral_slope(rng.normal(size=(256, 256))) == pytest.approx(0.0, abs=0.3)  # white noise
    assert acf_length(rng.normal(size=(128, 128))) <= 1
    assert acf_length(smooth) > 5


def test_generator_floor_matches_the_real_chip_ranges() -> None:
    """Floor windows (where fragments lie), median over 6 windows, fall in the 10th-90th
    percentile ranges measured on real polar chips (noise: up to twice the real p90, a
    documented choice: the chips are JPEG browse images, which lose noise)."""
    stats = []
    for seed in range(3):
        p = syn.generate_pair(size=384, seed=seed)
        stats += [image_stats(img[-200:, 92:292].astype(float)) for img in (p.t1, p.t2)]
    med = {k: float(np.median([s[k] for s in stats])) for k in stats[0]}
    assert syn.DN_MEAN[0] <= med["mean"] <= syn.DN_MEAN[1], med
    assert syn.DN_SD[0] * 0.8 <= med["sd"] <= syn.DN_SD[1] * 1.2, med
    assert syn.TEXTURE_SLOPE[0] - 0.3 <= med["slope"] <= syn.TEXTURE_SLOPE[1] + 0.3, med
    assert syn.REAL_NOISE_DN[0] <= med["noise"] <= 2 * syn.REAL_NOISE_DN[1], med
    # round 1 wrote 12-bit DN around 1300 with sd ~220: far from the real chips
    assert max(s["mean"] for s in stats) < 300


def test_generator_varies_illumination_and_misregistration_and_records_it() -> None:
    metas = [syn.generate_pair(size=128, seed=s).meta for s in range(12)]
    shifts = [max(abs(v) for v in m["t2_shift_px"]) for m in metas]
    assert min(shifts) < syn.SUBPIXEL_SHIFT < max(shifts) <= syn.MAX_SHIFT_PX  # sub-pixel and pixel scenes
    az = [m["sun_azimuth_offset_deg"][0] for m in metas]
    assert min(az) < -10 and max(az) > 10  # shadows not always straight down
    for m in metas:
        lo, hi = syn.SUN_ELEVATION_DEG
        assert all(lo <= e <= hi for e in m["sun_elevation_deg"])
        assert 0 < m["shadow_length_px"][0] <= m["shadow_length_px"][1] <= syn.MAX_SHADOW_PX
        assert syn.FRAGMENT_SEMI_AXIS_PX[0] <= m["fragment_semi_axis_px"][0]
        assert m["fragment_semi_axis_px"][1] <= syn.FRAGMENT_SEMI_AXIS_PX[1]
        assert m["synthetic"] is True


def test_written_values_avoid_hirise_null_and_saturation_codes() -> None:
    p = syn.generate_pair(size=128, seed=4)
    for img in (p.t1, p.t2):
        assert int(img.min()) >= syn.DN_VALID[0] and int(img.max()) <= syn.DN_VALID[1]
