"""One resampling of square inputs, shared by chip preparation, the ``scale`` augmentation
and the model's test-time scales."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resample_square(x: torch.Tensor, side: int) -> torch.Tensor:
    """[B, C, H, W] resampled to side x side (bilinear, antialiased; unchanged when it already
    is). One definition, so that a scale of 1 inside the model, the prepared chip and a
    training batch shown at another size are the same kind of image."""
    if x.shape[-2:] == (side, side):
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
