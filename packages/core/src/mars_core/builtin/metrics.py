"""Whole-split metrics for binary maps.

Confusion counts are summed over every pixel of a split and the ratios are taken once at
the end (not averaged per patch): per-patch averaging over-weights patches with little
foreground and is not what the published tables report. Counts are torchmetrics states
with ``dist_reduce_fx="sum"``, so they are exact under ``torchrun``.

Definitions (TP, FP, FN, TN over all pixels, prediction = probability >= threshold):
  precision = TP/(TP+FP); recall = TP/(TP+FN); f1 = 2PR/(P+R) = 2TP/(2TP+FP+FN)
  iou (foreground) = TP/(TP+FP+FN); iou_bg = TN/(TN+FN+FP); miou = (iou + iou_bg)/2
  accuracy = (TP+TN)/N; balanced_accuracy = (TP/(TP+FN) + TN/(TN+FP))/2
A ratio whose denominator is zero is reported as 0.
Pixels whose target is ``mars_core.masking.IGNORE`` (255) are never counted (nodata, gaps,
pixels outside the label coverage, pixels another evaluation tile already scored).
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from mars_core.masking import IGNORE


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    return torch.where(den > 0, num / den.clamp_min(1), torch.zeros_like(num))


class BinaryMapMetrics(Metric):
    full_state_update = False
    higher_is_better = True

    def __init__(self, threshold: float = 0.5, ignore_index: int | None = None) -> None:
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError("threshold must be in (0, 1)")
        self.threshold = threshold
        self.ignore_index = ignore_index
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        pred = probs >= self.threshold
        valid = target != IGNORE
        if self.ignore_index is not None:
            valid &= target != self.ignore_index
        truth = (target > 0.5) & valid
        self.tp += (pred & truth & valid).sum().double()
        self.fp += (pred & ~truth & valid).sum().double()
        self.fn += (~pred & truth & valid).sum().double()
        self.tn += (~pred & ~truth & valid).sum().double()

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        iou = _ratio(tp, tp + fp + fn)
        iou_bg = _ratio(tn, tn + fn + fp)
        recall = _ratio(tp, tp + fn)
        specificity = _ratio(tn, tn + fp)
        return {
            "miou": (iou + iou_bg) / 2,
            "iou": iou,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "precision": _ratio(tp, tp + fp),
            "recall": recall,
            "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
            "balanced_accuracy": (recall + specificity) / 2,
        }


class ClassificationMetrics(Metric):
    """Accuracy and macro F1 for K classes from probabilities [B,K] and labels [B]."""

    full_state_update = False

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError("num_classes must be >= 2")
        self.num_classes = num_classes
        self.add_state("confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        pred = probs.argmax(dim=1)
        idx = target.long().view(-1) * self.num_classes + pred.view(-1)
        self.confusion += torch.bincount(idx, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes).double()

    def compute(self) -> dict[str, torch.Tensor]:
        c = self.confusion
        tp = c.diag()
        prec = _ratio(tp, c.sum(0))
        rec = _ratio(tp, c.sum(1))
        f1 = _ratio(2 * prec * rec, prec + rec)
        return {"accuracy": _ratio(tp.sum(), c.sum()), "macro_f1": f1.mean(), "macro_recall": rec.mean()}
