"""Lovász-hinge loss for binary maps (Berman, Rannen Triki & Blaschko, CVPR 2018).

Why it is here: mIoU is what MMLS is judged by, and the Lovász hinge is a convex surrogate of
the Jaccard loss (1 - IoU) of the foreground class, whereas BCE optimises per-pixel accuracy.
Written from the paper's definition:

    signs  = 2 y - 1,   errors = 1 - logit * signs                    (hinge errors)
    sort errors in decreasing order (labels y sorted alongside)
    J_i    = 1 - (P - cumsum(y)_i) / (P + cumsum(1 - y)_i)             (P = sum of y)
    g      = (J_1, J_2 - J_1, J_3 - J_2, ...)                         (Lovász extension gradient)
    loss   = < relu(errors sorted), g >

Over the whole batch by default (like the core's dice, so patches without landslide do not
give per-image degenerate terms); ``per_image=True`` averages the per-patch losses instead.
Pixels marked ``IGNORE`` (255) are left out, as every core loss does.
"""

from __future__ import annotations

import torch
from torch import nn

from mars_core.masking import split_target


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. the sorted errors."""
    p = gt_sorted.sum()
    intersection = p - gt_sorted.cumsum(0)
    union = p + (1 - gt_sorted).cumsum(0)
    jaccard = 1.0 - intersection / union
    if gt_sorted.numel() > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_hinge_flat(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Lovász hinge of 1-D ``logits`` against 1-D ``labels`` in {0, 1}."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, descending=True)
    grad = lovasz_grad(labels[perm])
    return torch.dot(torch.relu(errors_sorted), grad)


class LovaszHingeLoss(nn.Module):
    """Loss ``lovasz``: binary Lovász hinge on logits [B,1,H,W], target [B,1,H,W] (255 ignored)."""

    def __init__(self, per_image: bool = False) -> None:
        super().__init__()
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        t, w = split_target(target)
        logits = logits.float()
        keep = w > 0
        if not self.per_image:
            return lovasz_hinge_flat(logits[keep], t[keep])
        losses = [lovasz_hinge_flat(logits[i][keep[i]], t[i][keep[i]]) for i in range(logits.shape[0])]
        return torch.stack(losses).mean()


def lovasz(per_image: bool = False) -> nn.Module:
    return LovaszHingeLoss(per_image)
