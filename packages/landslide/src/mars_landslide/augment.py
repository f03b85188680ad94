"""Training augmentation that keeps geophysical meaning.

Geometric moves (flips, 90-degree rotations) are applied identically to every channel and to
the mask: a landslide scar is the same landslide when the patch is mirrored, and the 232 m/px
grid is square so no resampling happens. Photometric jitter (brightness/contrast) is applied
ONLY to the optical channels (RGB, CTX grayscale): elevation, slope and thermal inertia are
physical quantities and must never be jittered. Slope is a magnitude (no aspect), so it is
invariant under flips and rotations; a DEM is too (heights move with their pixels).

Optional random crops (``crop``, e.g. 64 of 128) cut training cost 4x on CPU and add
positional variety; the fully convolutional models are evaluated on whole 128x128 patches.

Pure torch (no kornia) so the exact pixel-for-pixel behaviour is easy to test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class LandslideAugment:
    """Per-sample random flip + rot90 on ``image`` and ``mask``, optional optical jitter."""

    def __init__(
        self,
        optical_channels: Sequence[int] = (),
        brightness: float = 0.1,
        contrast: float = 0.1,
        p_photometric: float = 0.5,
        crop: int | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.crop = crop
        self.optical = list(optical_channels)
        self.brightness, self.contrast, self.p_photometric = brightness, contrast, p_photometric
        self.generator = generator

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        image: torch.Tensor = batch["image"]
        mask: torch.Tensor = batch["mask"]
        b = image.shape[0]
        ks = (self._rand(b) * 4).long().clamp_max(3).tolist()
        flips = (self._rand(b) < 0.5).tolist()
        imgs, masks = [], []
        h, w = image.shape[-2:]
        c = self.crop if self.crop is not None and self.crop < min(h, w) else None
        offs = (self._rand(b, 2) * torch.tensor([h - c + 1, w - c + 1])).long().tolist() if c else None
        for i in range(b):
            x, m = image[i], mask[i]
            if offs is not None:
                y0, x0 = offs[i]
                x, m = x[..., y0 : y0 + c, x0 : x0 + c], m[..., y0 : y0 + c, x0 : x0 + c]
            if flips[i]:
                x, m = x.flip(-1), m.flip(-1)
            if ks[i]:
                x, m = torch.rot90(x, ks[i], (-2, -1)), torch.rot90(m, ks[i], (-2, -1))
            imgs.append(x)
            masks.append(m)
        image, mask = torch.stack(imgs), torch.stack(masks)
        if self.optical and (self.brightness > 0 or self.contrast > 0):
            image = image.clone()
            idx = torch.tensor(self.optical, device=image.device)
            opt = image[:, idx]
            apply = (self._rand(b) < self.p_photometric).to(image.device).view(b, 1, 1, 1)
            c = 1 + (self._rand(b) * 2 - 1).to(image.device).view(b, 1, 1, 1) * self.contrast
            s = (self._rand(b) * 2 - 1).to(image.device).view(b, 1, 1, 1) * self.brightness
            mu = opt.mean(dim=(-2, -1), keepdim=True)
            jittered = (opt - mu) * c + mu + s
            image[:, idx] = torch.where(apply, jittered, opt)
        out = dict(batch)
        out["image"], out["mask"] = image.contiguous(), mask.contiguous()
        return out
