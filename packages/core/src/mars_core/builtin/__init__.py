"""The core's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from mars_core import hookimpl
from mars_core.builtin import losses, metrics


@hookimpl
def register_losses(register) -> None:  # type: ignore[no-untyped-def]
    register("bce", losses.BCELoss, description="binary cross-entropy on logits")
    register("dice", losses.DiceLoss, description="soft dice over the batch (1-dice or -log dice)")
    register("bce_dice", losses.bce_dice, description="weighted BCE + dice")
    register("focal", losses.FocalLoss, description="binary focal loss (alpha, gamma)")
    register("focal_dice", losses.focal_dice, description="lam*focal + (1-lam)*(-log dice)")
    register("cross_entropy", losses.cross_entropy, description="multi-class cross-entropy")


@hookimpl
def register_metrics(register) -> None:  # type: ignore[no-untyped-def]
    register("binary_map", metrics.BinaryMapMetrics,
             description="whole-split mIoU, IoU, F1, precision, recall, accuracy, balanced accuracy")
    register("classification", metrics.ClassificationMetrics, description="accuracy and macro F1")
