"""Losses of Su et al.: ``L = lam * L_focal + (1 - lam) * L_dice`` with ``L_dice = -log(dice)``.

Defaults are the paper's: ``lam = 0.1``, focal ``alpha = 0.25``, ``gamma = 2``. The parts
(focal, dice) are mars-core built-ins (``focal``, ``dice`` with ``log: true``); the
class-weighted BCE used in the ablation is registered here as ``weighted-bce``.
All take logits [B,1,H,W] and a {0,1} target of the same shape; target pixels equal to
``mars_core.masking.IGNORE`` (255) count in neither value nor gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mars_core.builtin.losses import focal_dice
from mars_core.masking import masked_mean, split_target


def icefrag_loss(lam: float = 0.1, alpha: float = 0.25, gamma: float = 2.0, smooth: float = 1.0) -> nn.Module:
    """The paper's combination; a thin wrapper of mars-core's ``focal_dice`` with its defaults."""
    return focal_dice(lam=lam, alpha=alpha, gamma=gamma, log_dice=True, smooth=smooth)


class WeightedBCE(nn.Module):
    """BCE with a positive-class weight.

    ``pos_weight="auto"`` weighs positives by ``n_negative / n_positive`` of the batch
    (capped at ``max_weight``): fragments cover well under 1 % of a scene, and a fixed
    weight tuned on one split is wrong on the next.
    """

    def __init__(self, pos_weight: float | str = "auto", max_weight: float = 100.0) -> None:
        super().__init__()
        if isinstance(pos_weight, str) and pos_weight != "auto":
            raise ValueError("pos_weight must be a positive number or 'auto'")
        if not isinstance(pos_weight, str) and pos_weight <= 0:
            raise ValueError("pos_weight must be positive")
        self.pos_weight = pos_weight
        self.max_weight = max_weight

    def weight(self, target: torch.Tensor, counted: torch.Tensor | None = None) -> torch.Tensor:
        if self.pos_weight == "auto":
            pos = target.float().sum()
            neg = (target.numel() if counted is None else counted.sum()) - pos
            return (neg / pos.clamp_min(1.0)).clamp(1.0, self.max_weight).detach()
        return torch.tensor(float(self.pos_weight), device=target.device)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t, w = split_target(target)
        per_pixel = F.binary_cross_entropy_with_logits(logits.float(), t, pos_weight=self.weight(t, w),
                                                       reduction="none")
        return masked_mean(per_pixel, w)
