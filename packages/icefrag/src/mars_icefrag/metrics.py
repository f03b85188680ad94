"""Event-based evaluation of Su et al.: fragments as objects, not pixels.

Rules, applied per image after thresholding probabilities at ``threshold`` (default 0.5):

1. Connected components of prediction and reference are found with 8-connectivity
   (``scipy.ndimage.label`` with a 3x3 structure of ones): a fragment that touches only
   diagonally is still one object.
2. Components smaller than ``min_size`` pixels (default 5) are dropped from BOTH maps
   before matching: single noisy pixels are neither detections nor fragments.
3. A predicted component that shares at least one pixel with a reference component is a
   true positive *for that reference*; several predictions on one reference count as ONE
   TP (TP counts references that are found).
4. A predicted component touching no reference is a false positive.
5. A reference component touched by no prediction is a false negative.

Pixels whose target is ``mars_core.masking.IGNORE`` (255) are removed from both maps
before step 1: they are neither predicted change nor reference change.

``TPR = TP / (TP + FN)`` and ``FDR = FP / (TP + FP)`` (0 when the denominator is 0).
Counts are torchmetrics sum states, so they are exact across processes.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from mars_core.connected import components
from mars_core.masking import IGNORE


def event_counts(pred: np.ndarray, ref: np.ndarray, min_size: int = 5) -> tuple[int, int, int]:
    """(TP, FP, FN) for one 2-D image pair of boolean maps."""
    p_lab, n_p = components(pred.astype(bool), min_size)
    r_lab, n_r = components(ref.astype(bool), min_size)
    overlap = (p_lab > 0) & (r_lab > 0)
    found_refs = np.unique(r_lab[overlap])
    hitting_preds = np.unique(p_lab[overlap])
    tp = int(found_refs.size)
    fp = n_p - int(hitting_preds.size)
    fn = n_r - tp
    return tp, fp, fn


class EventMetric(Metric):
    """Event TPR / FDR over a whole split (see the module docstring for the rules)."""

    full_state_update = False
    higher_is_better = None

    def __init__(self, threshold: float = 0.5, min_size: int = 5) -> None:
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError("threshold must be in (0, 1)")
        if min_size < 1:
            raise ValueError("min_size must be >= 1")
        self.threshold = threshold
        self.min_size = min_size
        for name in ("tp", "fp", "fn"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        counted = target.detach() != IGNORE
        pred = ((probs.detach() >= self.threshold) & counted).cpu().numpy()
        ref = ((target.detach() > 0.5) & counted).cpu().numpy()
        pred = pred.reshape(-1, *pred.shape[-2:])
        ref = ref.reshape(-1, *ref.shape[-2:])
        tp = fp = fn = 0
        for p, r in zip(pred, ref, strict=False):
            a, b, c = event_counts(p, r, self.min_size)
            tp, fp, fn = tp + a, fp + b, fn + c
        self.tp += tp
        self.fp += fp
        self.fn += fn

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, fn = self.tp, self.fp, self.fn
        tpr = torch.where(tp + fn > 0, tp / (tp + fn).clamp_min(1), torch.zeros_like(tp))
        fdr = torch.where(tp + fp > 0, fp / (tp + fp).clamp_min(1), torch.zeros_like(tp))
        return {"event_tpr": tpr, "event_fdr": fdr, "event_tp": tp.clone(), "event_fp": fp.clone(),
                "event_fn": fn.clone()}
