"""Metric ``glacier_map``: the core's whole-split binary counts plus MCC and per-class IoU.

F1 alone flatters a map where glacier is the majority class: on the withheld part an
all-glacier map scores F1 ~ 0.85. MCC and the background IoU do not:

  mcc = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))   (0 when a factor is 0)
  iou_glacier = TP/(TP+FP+FN), iou_other = TN/(TN+FP+FN), miou = their mean

plus every value of ``binary_map`` (f1, precision, recall, accuracy, balanced_accuracy).
Pixels whose target is IGNORE (255) never count.
"""

from __future__ import annotations

import torch

from mars_core.builtin.metrics import BinaryMapMetrics


class GlacierMapMetrics(BinaryMapMetrics):
    def compute(self) -> dict[str, torch.Tensor]:
        out = super().compute()
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        den = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
        mcc = torch.where(den > 0, (tp * tn - fp * fn) / den.clamp_min(1).sqrt(), torch.zeros_like(tp))
        out["mcc"] = mcc
        out["iou_glacier"] = out["iou"]
        out["iou_other"] = 2 * out["miou"] - out["iou"]
        return out


def confusion_scores(tp: float, fp: float, fn: float, tn: float) -> dict[str, float]:
    """The same figures from plain counts (benchmarks, the trivial baseline)."""
    m = GlacierMapMetrics()
    m.tp, m.fp, m.fn, m.tn = (torch.tensor(float(v), dtype=torch.float64) for v in (tp, fp, fn, tn))
    m._update_count = 1  # counts set directly: no "compute before update" warning
    return {k: float(v) for k, v in m.compute().items()}
