"""The core's own components, registered through the same hooks as any plugin.

Factories are named as "module:attr" strings, imported on first use: this module is loaded
on every CLI start, and the losses and metrics need torch and torchmetrics.
"""

from __future__ import annotations

from mars_core import hookimpl

_LOSSES = "mars_core.builtin.losses"
_METRICS = "mars_core.builtin.metrics"


@hookimpl
def register_losses(register) -> None:  # type: ignore[no-untyped-def]
    register("bce", f"{_LOSSES}:BCELoss", description="binary cross-entropy on logits")
    register("dice", f"{_LOSSES}:DiceLoss", description="soft dice over the batch (1-dice or -log dice)")
    register("bce_dice", f"{_LOSSES}:bce_dice", description="weighted BCE + dice")
    register("focal", f"{_LOSSES}:FocalLoss", description="binary focal loss (alpha, gamma)")
    register("focal_dice", f"{_LOSSES}:focal_dice", description="lam*focal + (1-lam)*(-log dice)")
    register("cross_entropy", f"{_LOSSES}:cross_entropy", description="multi-class cross-entropy")


@hookimpl
def register_metrics(register) -> None:  # type: ignore[no-untyped-def]
    register("binary_map", f"{_METRICS}:BinaryMapMetrics",
             description="whole-split mIoU, IoU, F1, precision, recall, accuracy, balanced accuracy")
    register("classification", f"{_METRICS}:ClassificationMetrics", description="accuracy and macro F1")
