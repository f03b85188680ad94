"""The ignore convention shared by data sources, losses and metrics.

A ``mask`` tensor holds the class of each pixel (0/1 for binary maps) or :data:`IGNORE`
(255) for a pixel that must count in neither the loss nor the metrics: nodata in any band,
outside the label coverage, the label file's ignore value, a gap pixel, or a pixel another
evaluation tile already scored. 255 rather than -1 because masks are often carried as uint8
and because it is the value ``torchmetrics``/``smp`` users already pass as ``ignore_index``.
This module imports only torch so that losses and metrics can use it cheaply.
"""

from __future__ import annotations

import torch

#: Mask value of a pixel excluded from loss and metrics.
IGNORE = 255


def split_target(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(target with ignored pixels set to 0, float weight 1 = counted / 0 = ignored)``.

    Losses multiply their per-pixel terms by the weight, so whatever the model predicts at
    an ignored pixel changes neither the value nor the gradient.
    """
    t = target.float()
    valid = t != IGNORE
    return torch.where(valid, t, torch.zeros_like(t)), valid.to(t.dtype)


def masked_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the counted pixels (0 when none is counted)."""
    return (values * weight).sum() / weight.sum().clamp_min(1.0)
