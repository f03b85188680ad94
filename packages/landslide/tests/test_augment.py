"""Augmentation keeps image and mask aligned and never jitters DEM/slope/thermal inertia."""

from __future__ import annotations

import torch

from mars_landslide.augment import LandslideAugment
from mars_landslide.mmls import MMLSSource


def _geometric_variants(x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for flip in (False, True):
        y = x.flip(-1) if flip else x
        out += [torch.rot90(y, k, (-2, -1)) for k in range(4)]
    return out


def test_alignment_and_physical_channels_untouched() -> None:
    torch.manual_seed(0)
    b = 8
    image = torch.randn(b, 7, 32, 32)
    # make the mask a deterministic function of channel 3 so alignment is checkable
    mask = (image[:, 3:4] > 0).float()
    aug = MMLSSource(None).train_augmentation()
    aug.p_photometric = 1.0
    out = aug({"image": image, "mask": mask, "index": torch.arange(b)})
    assert out["image"].shape == image.shape and out["mask"].shape == mask.shape
    assert torch.equal(out["mask"], (out["image"][:, 3:4] > 0).float())
    moved = 0
    for i in range(b):
        variants = _geometric_variants(image[i])
        # physical channels (DEM 3, thermal inertia 4, slope 5): exactly a geometric move
        match = [v for v in variants if torch.equal(v[3:6], out["image"][i, 3:6])]
        assert match, "DEM/TI/slope changed beyond a flip/rotation"
        moved += not torch.equal(image[i], out["image"][i])
    assert moved > 0
    # optical channels were jittered (p=1) but remain an affine function of the moved input
    assert not torch.equal(out["image"][:, :3], image[:, :3])


def test_no_photometric_when_disabled() -> None:
    aug = LandslideAugment(optical_channels=[], generator=torch.Generator().manual_seed(1))
    image = torch.randn(4, 7, 16, 16)
    out = aug({"image": image, "mask": torch.zeros(4, 1, 16, 16)})
    for i in range(4):
        assert any(torch.equal(v, out["image"][i]) for v in _geometric_variants(image[i]))


def test_channel_subset_maps_optical_indices() -> None:
    src = MMLSSource(None, channels=["dem", "gray", "slope"])
    aug = src.train_augmentation()
    assert aug.optical == [1]


def test_random_crop_keeps_alignment() -> None:
    aug = LandslideAugment(crop=16, generator=torch.Generator().manual_seed(2))
    image = torch.randn(4, 7, 32, 32)
    mask = (image[:, 4:5] > 0).float()
    out = aug({"image": image, "mask": mask})
    assert out["image"].shape == (4, 7, 16, 16) and out["mask"].shape == (4, 1, 16, 16)
    assert torch.equal(out["mask"], (out["image"][:, 4:5] > 0).float())
