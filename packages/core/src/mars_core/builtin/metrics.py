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
    """Whole-split scores for K classes from probabilities [B,K] and integer labels [B].

    From the K x K confusion matrix (rows truth, columns argmax prediction):
      accuracy = trace/N; recall_k = C[k,k]/sum_j C[k,j]; precision_k = C[k,k]/sum_j C[j,k]
      balanced_accuracy = macro_recall = mean_k recall_k
      macro_f1 = mean_k 2 P_k R_k/(P_k+R_k)
      f1 = F1 of the positive class (index 1, the contract's ``classes[1]``) when K = 2,
      else macro_f1
    ``auroc``: area under the ROC curve over the whole split (all probabilities are kept,
    then ranked once): of the positive class's probability when K = 2, else the macro mean
    of one-vs-rest AUROCs (torchmetrics); 0 when the split lacks a class (no curve exists).
    A ratio whose denominator is zero is reported as 0.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError("num_classes must be >= 2")
        self.num_classes = num_classes
        self.add_state("confusion", default=torch.zeros(num_classes, num_classes, dtype=torch.float64),
                       dist_reduce_fx="sum")
        self.add_state("probs", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        if probs.ndim != 2 or probs.shape[1] != self.num_classes:
            raise ValueError(f"expected probabilities [B,{self.num_classes}], got {tuple(probs.shape)}")
        pred = probs.argmax(dim=1)
        labels = target.long().view(-1)
        idx = labels * self.num_classes + pred.view(-1)
        self.confusion += torch.bincount(idx, minlength=self.num_classes**2).view(
            self.num_classes, self.num_classes).double()
        self.probs.append(probs.detach().float())
        self.labels.append(labels)

    def _auroc(self) -> torch.Tensor:
        from torchmetrics.utilities import dim_zero_cat

        if isinstance(self.probs, list) and not self.probs:
            return torch.tensor(0.0, dtype=torch.float64)
        probs, labels = dim_zero_cat(self.probs), dim_zero_cat(self.labels)
        if labels.unique().numel() < 2:
            return torch.tensor(0.0, dtype=torch.float64)
        from torchmetrics.functional.classification import binary_auroc, multiclass_auroc

        if self.num_classes == 2:
            return binary_auroc(probs[:, 1], labels).double()
        return multiclass_auroc(probs, labels, num_classes=self.num_classes, average="macro").double()

    def compute(self) -> dict[str, torch.Tensor]:
        c = self.confusion
        tp = c.diag()
        prec = _ratio(tp, c.sum(0))
        rec = _ratio(tp, c.sum(1))
        f1 = _ratio(2 * prec * rec, prec + rec)
        return {
            "accuracy": _ratio(tp.sum(), c.sum()),
            "balanced_accuracy": rec.mean(),
            "f1": f1[1] if self.num_classes == 2 else f1.mean(),
            "macro_f1": f1.mean(),
            "macro_recall": rec.mean(),
            "auroc": self._auroc(),
        }
