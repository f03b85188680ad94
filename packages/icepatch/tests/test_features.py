"""The image-statistics baseline: pixels only, and it responds to what it claims to measure."""

from __future__ import annotations

import numpy as np

from mars_icepatch.chips import read_labels, sample_root
from mars_icepatch.features import chip_features, feature_matrix, fit_gbm


def test_features_follow_brightness_and_texture():
    rng = np.random.default_rng(0)
    valid = np.ones((64, 64), bool)
    flat = np.full((64, 64), 0.3)
    rough = 0.3 + 0.2 * rng.standard_normal((64, 64))
    f_flat, f_bright, f_rough = (chip_features(x, valid) for x in (flat, flat + 0.4, rough))
    assert f_bright[0] > f_flat[0] + 0.39  # mean level
    grad_mean_scale1 = 25
    assert f_rough[grad_mean_scale1] > 0.1 > f_flat[grad_mean_scale1]
    assert np.isfinite(f_flat).all() and f_flat.shape == f_rough.shape


def test_gbm_fits_real_sample_chips_without_metadata():
    chips = read_labels(sample_root())[:24]
    feats = feature_matrix(chips)
    assert feats.shape[0] == 24 and np.isfinite(feats).all()
    lat = np.array([abs(c.latitude) for c in chips])
    assert not any(np.allclose(col, lat) for col in feats.T)  # latitude is not a feature
    gbm = fit_gbm(feats, np.array([c.ice for c in chips]))
    assert gbm.predict_proba(feats).shape == (24, 2)
