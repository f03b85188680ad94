"""IGNORE (255) pixels count in no built-in loss and no map metric."""

from __future__ import annotations

import pytest
import torch

from mars_core.builtin.losses import BCELoss, DiceLoss, FocalLoss, bce_dice, focal_dice
from mars_core.builtin.metrics import BinaryMapMetrics
from mars_core.masking import IGNORE

LOSSES = {"bce": BCELoss, "dice": DiceLoss, "bce_dice": bce_dice, "focal": FocalLoss, "focal_dice": focal_dice}


def _batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 16, 16, generator=g)
    target = (torch.rand(2, 1, 16, 16, generator=g) > 0.7).float()
    target[:, :, :5] = IGNORE
    target[1, 0, 10, 10] = IGNORE
    garbage = logits.clone()
    garbage[target == IGNORE] = torch.randn(int((target == IGNORE).sum()), generator=g) * 50 + 30
    return logits, garbage, target


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_do_not_see_ignored_pixels(name):
    loss = LOSSES[name]()
    logits, garbage, target = _batch()
    a, b = loss(logits, target), loss(garbage, target)
    assert torch.isfinite(a) and torch.allclose(a, b, atol=1e-6)
    # the same as the loss over the counted pixels only, when those form whole rows
    rows = target.clone()
    rows[1, 0, 10, 10] = 0
    crop = loss(logits[:, :, 5:], rows[:, :, 5:])
    assert torch.allclose(loss(logits, rows), crop, atol=1e-6)
    # and the gradient at ignored pixels is zero
    x = garbage.clone().requires_grad_(True)
    loss(x, target).backward()
    assert float(x.grad[target == IGNORE].abs().max()) == 0.0
    assert float(x.grad[target != IGNORE].abs().max()) > 0.0


def test_binary_map_metric_does_not_count_ignored_pixels():
    logits, garbage, target = _batch()
    m1, m2 = BinaryMapMetrics(), BinaryMapMetrics()
    m1.update(logits.sigmoid(), target)
    m2.update(garbage.sigmoid(), target)
    assert m1.compute() == m2.compute()
    assert int(m1.tp + m1.fp + m1.fn + m1.tn) == int((target != IGNORE).sum())
