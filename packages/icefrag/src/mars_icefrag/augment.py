"""Online augmentation for bitemporal HiRISE pairs, and why flips and rotations are refused.

Allowed: ``perspective``, ``distortion`` (slight radial/optical distortion), ``brightness``,
``contrast``. They run through one ``kornia.augmentation.AugmentationSequential`` with data
keys ``(input, input, mask)``, so the SAME random parameters warp T1, T2 and the mask (the
mask with nearest-neighbour interpolation; intensity changes skip the mask). kornia's
fisheye (used for ``distortion``) has no mask mode, so it warps T1, T2 and mask stacked as
channels of one tensor, one parameter set, and the mask is re-binarised at 0.5.

On top of the shared jitter, each date gets a small *independent* brightness/contrast
change (``date_jitter``, default +-5 %): real pairs are acquired under different sun
elevation and detector gain, and a model must not read a global radiometric shift as
change. Set ``date_jitter=0`` to disable.

Refused: flips, rotations, transposes. The sun lights a polar scarp from one side, so a
fragment's shadow always falls on the same side of it; a flipped or rotated tile shows
physically impossible shadows and teaches the network the wrong cue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import kornia.augmentation as K
import torch

from mars_core.errors import MarsError
from mars_core.masking import IGNORE

ALLOWED = ("perspective", "distortion", "brightness", "contrast")
FORBIDDEN = ("hflip", "vflip", "flip", "horizontal_flip", "vertical_flip", "rotate", "rotation", "rot90",
             "random_rotation", "transpose", "affine")
SHADOW_REASON = (
    "the sun lights the scarp from one side, so every fragment's shadow falls on the same side of it; "
    "flipping or rotating a tile puts shadows where they cannot be and teaches the network a wrong cue"
)


def validate_augment(names: Sequence[str] | None) -> list[str]:
    """Return the names if all are allowed; otherwise a MarsError that says why."""
    out: list[str] = []
    for raw in names or []:
        name = str(raw).strip().lower()
        if name in FORBIDDEN or "flip" in name or "rot" in name:
            raise MarsError(f"augmentation '{raw}' is not allowed for icefrag: {SHADOW_REASON}. "
                            f"Allowed: {', '.join(ALLOWED)}")
        if name not in ALLOWED:
            raise MarsError(f"unknown augmentation '{raw}' for icefrag; allowed: {', '.join(ALLOWED)}")
        if name not in out:
            out.append(name)
    return out


class PairAugmentation:
    """Callable batch -> batch applying identical geometry to image1, image2 and mask."""

    def __init__(self, names: Sequence[str], p: float = 0.5, perspective: float = 0.15,
                 distortion: float = 0.05, brightness: float = 0.1, contrast: float = 0.1,
                 date_jitter: float = 0.05) -> None:
        self.names = validate_augment(names)
        ops: list[Any] = []
        if "perspective" in self.names:
            ops.append(K.RandomPerspective(distortion_scale=perspective, p=p))
        self.distort = None
        if "distortion" in self.names:
            c = torch.tensor([-0.1, 0.1])
            self.distort = K.RandomFisheye(center_x=c, center_y=c,
                                           gamma=torch.tensor([1.0 - distortion, 1.0 + distortion]), p=p)
        if "brightness" in self.names:
            ops.append(K.RandomBrightness((1 - brightness, 1 + brightness), clip_output=False, p=p))
        if "contrast" in self.names:
            ops.append(K.RandomContrast((1 - contrast, 1 + contrast), clip_output=False, p=p))
        self.shared = K.AugmentationSequential(*ops, data_keys=["input", "input", "mask"]) if ops else None
        self.date_jitter = date_jitter

    def _jitter(self, x: torch.Tensor) -> torch.Tensor:
        if self.date_jitter <= 0:
            return x
        b = x.shape[0]
        gain = 1 + (torch.rand(b, 1, 1, 1, device=x.device) * 2 - 1) * self.date_jitter
        offset = (torch.rand(b, 1, 1, 1, device=x.device) * 2 - 1) * self.date_jitter * x.abs().mean()
        return x * gain + offset

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        i1, i2, m = batch["image1"], batch["image2"], batch["mask"]
        # The mask travels as two {0,1} channels, change and IGNORE (255), so that
        # interpolation never blends 255 into a class value; both are re-binarised at 0.5.
        m = torch.cat([(m == 1).to(i1.dtype), (m == IGNORE).to(i1.dtype)], dim=1)
        if self.shared is not None:
            i1, i2, m = self.shared(i1, i2, m)
        if self.distort is not None:
            # kornia's fisheye has no mask mode: warp the three as channels of one tensor
            # (one set of parameters), then re-binarise the mask.
            c = i1.shape[1]
            stacked = self.distort(torch.cat([i1, i2, m.to(i1.dtype)], dim=1))
            i1, i2, m = stacked[:, :c], stacked[:, c : 2 * c], stacked[:, 2 * c :]
        m = torch.where(m[:, 1:] > 0.5, float(IGNORE), (m[:, :1] > 0.5).float()).to(batch["mask"].dtype)
        out["image1"], out["image2"], out["mask"] = self._jitter(i1), self._jitter(i2), m
        return out


def build_augmentation(names: Sequence[str] | None, **params: Any) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    checked = validate_augment(names)
    return PairAugmentation(checked, **params) if checked else None
