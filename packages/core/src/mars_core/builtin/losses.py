"""Generic losses for binary maps (logits [B,1,H,W], target [B,1,H,W] in {0,1}).

Pixels whose target is ``mars_core.masking.IGNORE`` (255) count in neither the value nor
the gradient: per-pixel terms are averaged over the counted pixels only, and dice sums skip
them. Without ignored pixels every loss equals its plain definition.

Soft dice is computed over the whole batch rather than averaged per image, so patches with
no foreground do not produce the 0/0 instabilities that per-image dice has.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mars_core.masking import masked_mean, split_target


class BCELoss(nn.Module):
    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pw = None
        if self.pos_weight is not None:
            pw = torch.tensor(self.pos_weight, device=logits.device, dtype=torch.float32)
        t, w = split_target(target)
        per_pixel = F.binary_cross_entropy_with_logits(logits.float(), t, pos_weight=pw, reduction="none")
        return masked_mean(per_pixel, w)


def soft_dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    t, w = split_target(target)
    p = logits.float().sigmoid() * w
    inter = (p * t).sum()
    return (2 * inter + smooth) / (p.sum() + t.sum() + smooth)


class DiceLoss(nn.Module):
    """``1 - dice`` (``log=False``) or ``-log(dice)`` (``log=True``)."""

    def __init__(self, smooth: float = 1.0, log: bool = False) -> None:
        super().__init__()
        self.smooth = smooth
        self.log = log

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        d = soft_dice(logits, target, self.smooth)
        return -torch.log(d.clamp_min(1e-7)) if self.log else 1 - d


class FocalLoss(nn.Module):
    """Binary focal loss (Lin et al. 2017), mean over the counted pixels."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        if not 0 <= alpha <= 1:
            raise ValueError("alpha must be in [0, 1]")
        self.alpha = alpha
        self.gamma = gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        t, w = split_target(target)
        ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        p = logits.sigmoid()
        p_t = p * t + (1 - p) * (1 - t)
        alpha_t = self.alpha * t + (1 - self.alpha) * (1 - t)
        return masked_mean(alpha_t * (1 - p_t) ** self.gamma * ce, w)


class WeightedSum(nn.Module):
    """``w_a * a + w_b * b`` of two losses; how BCE+dice and focal+dice are built."""

    def __init__(self, a: nn.Module, b: nn.Module, w_a: float, w_b: float) -> None:
        super().__init__()
        self.a, self.b, self.w_a, self.w_b = a, b, w_a, w_b

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.w_a * self.a(logits, target) + self.w_b * self.b(logits, target)


def bce_dice(bce_weight: float = 0.5, pos_weight: float | None = None, smooth: float = 1.0) -> nn.Module:
    if not 0 <= bce_weight <= 1:
        raise ValueError("bce_weight must be in [0, 1]")
    return WeightedSum(BCELoss(pos_weight), DiceLoss(smooth), bce_weight, 1 - bce_weight)


def focal_dice(lam: float = 0.1, alpha: float = 0.25, gamma: float = 2.0, log_dice: bool = True,
               smooth: float = 1.0) -> nn.Module:
    """``lam * focal + (1 - lam) * dice_loss``; with ``log_dice`` the dice term is ``-log(dice)``."""
    if not 0 <= lam <= 1:
        raise ValueError("lam must be in [0, 1]")
    return WeightedSum(FocalLoss(alpha, gamma), DiceLoss(smooth, log=log_dice), lam, 1 - lam)


def cross_entropy(label_smoothing: float = 0.0) -> nn.Module:
    """For classification tasks (logits [B,K], integer labels)."""
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
