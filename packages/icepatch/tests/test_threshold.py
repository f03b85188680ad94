"""The decision threshold: chosen on validation chips only, stored in the model's weights,
used by everything that loads the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from icepatch_testutil import copy_sample, model_dir

from mars_core.cli import main
from mars_core.errors import MarsError
from mars_core.tracking.model_io import load_model
from mars_icepatch.calibrate import calibrate_model, source_for
from mars_icepatch.chips import HiriseChips
from mars_icepatch.folder import chip_probabilities
from mars_icepatch.models import xception_small
from mars_icepatch.threshold import balanced_accuracy, choose_threshold, decision_threshold, set_decision_threshold


def test_choose_threshold_separates_ice_below_one_half():
    p = np.array([0.05, 0.1, 0.12, 0.2, 0.3, 0.35])
    y = np.array([0, 0, 0, 1, 1, 1])
    t = choose_threshold(p, y)
    assert 0.12 < t < 0.2  # the midpoint between the classes, not 0.5 (balanced accuracy 0.5)
    assert balanced_accuracy(y, (p >= t).astype(int)) == 1.0
    assert balanced_accuracy(y, (p >= 0.5).astype(int)) == 0.5


def test_choose_threshold_keeps_one_half_on_ties_and_refuses_one_class():
    p, y = np.array([0.1, 0.9]), np.array([0, 1])
    assert choose_threshold(p, y) == 0.5  # every cut in (0.1, 0.9] is perfect: the nearest to 0.5
    with pytest.raises(MarsError, match="one class"):
        choose_threshold(np.array([0.2, 0.4]), np.array([1, 1]))


def test_stored_threshold_moves_the_decision_and_survives_saving(tmp_path):
    torch.manual_seed(0)
    model = xception_small(widths=[16, 32], stem=8).eval()
    x = torch.rand(16, 1, 48, 48)
    with torch.no_grad():
        p = model(x).softmax(1)[:, 1].numpy()
    t = float(np.median(p))
    set_decision_threshold(model, t)
    with torch.no_grad():
        shifted = model(x).softmax(1)[:, 1].numpy()
    assert decision_threshold(model) == pytest.approx(t)
    assert np.array_equal(shifted >= 0.5, p >= t)  # p' >= 0.5 exactly where p >= t
    assert np.array_equal(np.argsort(shifted), np.argsort(p))  # the ranking (AUROC) is unchanged
    # an older state dict without the buffer still loads, as t = 0.5
    state = {k: v for k, v in model.state_dict().items() if k != "decision_logit"}
    fresh = xception_small(widths=[16, 32], stem=8)
    fresh.load_state_dict(state)
    assert decision_threshold(fresh) == 0.5


def test_calibrate_uses_validation_chips_only_and_predictions_follow(tmp_path, capsys):
    mdir = model_dir(tmp_path, input_size=48)
    data = copy_sample(tmp_path / "chips")
    loaded = load_model(str(mdir))
    src = source_for(loaded.cfg, data)
    val, test = src.split_chips("val"), src.split_chips("test")
    p_val, _ = chip_probabilities(loaded.model, val, src.input_size, src.hot_pixels)
    expected = choose_threshold(p_val, np.array([c.ice for c in val]))
    info = calibrate_model(loaded.model, src, "val")
    assert info["threshold"] == pytest.approx(expected, abs=1e-6) and info["chips"] == len(val)
    with pytest.raises(MarsError, match="test split"):
        calibrate_model(loaded.model, src, "test")

    out = tmp_path / "calibrated"
    assert main(["icepatch", "calibrate", "--model", str(mdir), "--data", str(data), "--out", str(out)]) == 0
    cal = load_model(str(out))
    assert decision_threshold(cal.model) == pytest.approx(expected, abs=1e-6)
    assert cal.contract.threshold == pytest.approx(expected, abs=1e-6)
    # verdicts through the CLI decide with the stored cut: chip accuracy = mean(p_raw >= t == label)
    src_all = HiriseChips(str(data), input_size=48)
    p_raw, _ = chip_probabilities(load_model(str(mdir)).model, src_all.chips, 48, src_all.hot_pixels)
    y = np.array([c.ice for c in src_all.chips])
    assert main(["icepatch", "verdicts", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "v")]) == 0
    res = json.loads((tmp_path / "v" / "verdicts.json").read_text())
    assert res["chip_accuracy"] == pytest.approx(float(((p_raw >= expected).astype(int) == y).mean()))
    capsys.readouterr()
    assert main(["icepatch", "calibrate", "--model", str(mdir), "--data", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and len(err.splitlines()) == 1
    assert {c.observation for c in test}.isdisjoint({c.observation for c in val})


def test_tta_makes_the_model_invariant_to_rotations_and_flips():
    torch.manual_seed(0)
    model = xception_small(widths=[16, 32], stem=8, tta=True).eval()
    x = torch.rand(3, 1, 48, 48)
    with torch.no_grad():
        base = model(x)
        views = [model(torch.rot90(x, 1, (2, 3))), model(x.flip(3)), model(torch.rot90(x, 3, (2, 3)).flip(2))]
        model.tta = False
        plain, plain_rot = model(x), model(torch.rot90(x, 1, (2, 3)))
    assert all(torch.allclose(v, base, atol=1e-5) for v in views)
    assert not torch.allclose(plain, plain_rot, atol=1e-5)  # without TTA the net is not invariant
