"""Training-side additions: per-chip augmentation, oversampling of the rarer class, the
in-memory chip cache."""

from __future__ import annotations

import shutil

import pytest
import torch
from icepatch_testutil import copy_sample

from mars_core.errors import MarsError
from mars_icepatch.augment import ChipAugmentation, augmentation_from_config
from mars_icepatch.chips import HiriseChips, oversample, read_labels
from mars_icepatch.resample import resample_square


def test_d4_keeps_each_chip_a_rotation_or_flip_of_itself():
    torch.manual_seed(0)
    x = torch.rand(12, 1, 8, 8)
    out = ChipAugmentation(["d4"])({"image": x, "label": torch.arange(12)})
    assert torch.equal(out["label"], torch.arange(12)) and out["image"].shape == x.shape
    changed = 0
    for xi, oi in zip(x, out["image"], strict=True):
        variants = [torch.rot90(xi, k, (1, 2)) for k in range(4)]
        variants += [v.flip(2) for v in variants]
        assert any(torch.equal(oi, v) for v in variants)
        changed += not torch.equal(oi, xi)
    assert changed > 0  # 12 chips, each kept unchanged with probability 1/8


def test_brightness_changes_levels_not_shapes_and_bad_kinds_are_refused():
    torch.manual_seed(1)
    x = torch.rand(6, 1, 8, 8) * 0.5 + 0.25
    out = ChipAugmentation(["brightness"])({"image": x})["image"]
    assert not torch.allclose(out, x)
    # per chip an affine map of the levels: the correlation with the input stays 1
    for xi, oi in zip(x, out, strict=True):
        assert torch.corrcoef(torch.stack([xi.ravel(), oi.ravel()]))[0, 1] > 0.999
    assert augmentation_from_config(None) is None and augmentation_from_config([]) is None
    with pytest.raises(MarsError, match="unknown kind"):
        augmentation_from_config(["d4", "mixup"])
    with pytest.raises(MarsError, match="data.balance"):
        HiriseChips(None, balance="smote")


def test_oversample_balances_the_training_split_only():
    src = HiriseChips(None, input_size=32, balance="oversample")
    train = src.split_chips("train")
    n1 = sum(c.ice for c in train)
    rows = oversample(train)
    assert len(rows) == len(train) + (round((len(train) - n1) / n1) - 1) * n1 or n1 * 2 > len(train)
    ds = src.dataset("train")
    assert len(ds) == len(rows)
    assert len(src.dataset("val")) == len(src.split_chips("val"))  # never in evaluation splits
    skewed = [c for c in read_labels(src.root) if not c.ice][:12] + [c for c in read_labels(src.root) if c.ice][:3]
    balanced = oversample(skewed)
    assert sum(c.ice for c in balanced) == 12 and len(balanced) == 24


def test_cache_serves_a_chip_after_its_file_is_gone(tmp_path):
    data = copy_sample(tmp_path / "chips", n=12)
    src = HiriseChips(str(data), split=[1, 0, 0], input_size=32, cache=True)
    ds = src.dataset("train")
    uncached = HiriseChips(str(data), split=[1, 0, 0], input_size=32, cache=False).dataset("train")
    first = ds[0]["image"].clone()
    assert torch.equal(uncached[0]["image"], first)
    (data / "chips" / src.split_chips("train")[0].file).unlink()
    assert torch.equal(ds[0]["image"], first)
    with pytest.raises(MarsError):
        uncached[0]
    shutil.rmtree(data)


def test_zoom_magnifies_a_window_that_stays_inside_the_chip():
    torch.manual_seed(2)
    # a horizontal ramp: a window of side f has a ramp of slope f per pixel, and its values
    # stay within the chip's range (no padding)
    s = 32
    ramp = torch.linspace(0, 1, s).repeat(s, 1)[None, None].repeat(16, 1, 1, 1)
    out = ChipAugmentation(["zoom"], zoom_max=0.5)({"image": ramp})["image"]
    assert out.shape == ramp.shape
    spans = out[:, 0, s // 2, -1] - out[:, 0, s // 2, 0]
    assert (spans > 0.45).all() and (spans < 1.0).all()  # side fraction in (0.5, 1]: a real zoom
    assert spans.std() > 0.02  # a different window per chip
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    same = ChipAugmentation(["zoom"], zoom_max=0.0)({"image": ramp})["image"]
    assert torch.equal(same, ramp)
    with pytest.raises(MarsError, match="zoom_max"):
        augmentation_from_config({"kinds": ["zoom"], "zoom_max": 1.0})


def test_zoom_out_shows_the_chip_smaller_with_a_mirrored_margin():
    torch.manual_seed(3)
    s = 32
    ramp = torch.linspace(0, 1, s).repeat(s, 1)[None, None].repeat(16, 1, 1, 1)
    out = ChipAugmentation(["zoom"], zoom_max=0.0, zoom_out=0.5)({"image": ramp})["image"]
    # a window of side f >= 1 over a ramp: near the centre the ramp climbs f times faster per
    # output pixel than in the chip (the chip is shown smaller)
    slope = (out[:, 0, s // 2, s // 2 + 2] - out[:, 0, s // 2, s // 2 - 2]) / (ramp[0, 0, 0, 4] - ramp[0, 0, 0, 0])
    assert (slope >= 1 - 1e-4).all() and (slope > 1.05).sum() >= 8 and (slope < 1.5 + 1e-4).all()
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6  # reflection: no values from outside
    with pytest.raises(MarsError, match="zoom_out"):
        augmentation_from_config({"kinds": ["zoom"], "zoom_out": -0.1})


def test_contrast_changes_the_tone_curve_monotonically_and_keeps_black_black():
    torch.manual_seed(4)
    x = torch.rand(8, 1, 16, 16) * 0.8 + 0.1
    x[:, :, :4, :4] = 0.0  # a no-data wedge
    out = ChipAugmentation(["contrast"], gamma_sd=0.3, contrast_sd=0.0)({"image": x})["image"]
    assert not torch.allclose(out, x)
    assert torch.equal(out[:, :, :4, :4], torch.zeros(8, 1, 4, 4))
    for xi, oi in zip(x, out, strict=True):  # a gamma keeps the order of the levels
        order = torch.argsort(xi.ravel())
        assert (oi.ravel()[order].diff() >= -1e-6).all()
    stretched = ChipAugmentation(["contrast"], gamma_sd=0.0, contrast_sd=0.5)({"image": x})["image"]
    ratio = stretched.std(dim=(1, 2, 3)) / x.std(dim=(1, 2, 3))
    assert ratio.std() > 0.05  # a different contrast per chip


def test_blur_smooths_per_chip_and_keeps_the_mean():
    torch.manual_seed(5)
    x = torch.rand(10, 1, 32, 32)
    out = ChipAugmentation(["blur"], blur_max=2.0)({"image": x})["image"]
    assert out.shape == x.shape
    assert torch.allclose(out.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=0.02)
    sd = out.std(dim=(1, 2, 3))
    assert (sd <= x.std(dim=(1, 2, 3)) + 1e-6).all() and sd.max() - sd.min() > 0.03
    assert torch.allclose(ChipAugmentation(["blur"], blur_max=0.0)({"image": x})["image"], x)


def test_scale_shows_the_whole_batch_at_one_drawn_size():
    torch.manual_seed(6)
    s = 40
    x = torch.rand(5, 1, s, s)
    aug = ChipAugmentation(["scale"], scale_min=0.5, scale_max=1.5)
    sides = set()
    for _ in range(20):
        out = aug({"image": x, "label": torch.arange(5)})
        side = out["image"].shape[-1]
        assert out["image"].shape == (5, 1, side, side) and 20 <= side <= 60
        assert torch.equal(out["label"], torch.arange(5))
        # the whole chip at another size, resampled as the model's test-time scales are
        assert torch.allclose(out["image"], resample_square(x, side))
        sides.add(side)
    assert len(sides) >= 8 and min(sides) < s < max(sides)
    fixed = ChipAugmentation(["scale"], scale_min=1.0, scale_max=1.0)({"image": x})["image"]
    assert torch.equal(fixed, x)
    with pytest.raises(MarsError, match="scale_min"):
        augmentation_from_config({"kinds": ["scale"], "scale_min": 0.0})
    with pytest.raises(MarsError, match="scale_min"):
        augmentation_from_config({"kinds": ["scale"], "scale_min": 1.5, "scale_max": 1.0})
