"""Event-based evaluation of Su et al.: fragments as objects, not pixels.

Rules, applied per image after thresholding probabilities at ``threshold`` (default 0.5):

1. Connected components of prediction and reference are found with 8-connectivity
   (``scipy.ndimage.label`` with a 3x3 structure of ones): a fragment that touches only
   diagonally is still one object.
2. EVERY component counts (``min_size`` 1, the default since issue 13): the paper drops
   components under 5 px only in its fragment/shadow association analysis, not in the
   event TPR/FDR (``associate`` and the GeoJSON of ``mars-core predict`` keep their 5 px).
   ``min_size`` > 1 drops smaller components from BOTH maps before matching (the round-1
   rule, kept as an option).
3. A predicted component that shares at least one pixel with a reference component is a
   true positive *for that reference*; several predictions on one reference count as ONE
   TP (TP counts references that are found).
4. A predicted component touching no reference is a false positive.
5. A reference component touched by no prediction is a false negative.

Pixels whose target is ``mars_core.masking.IGNORE`` (255) are removed from both maps
before step 1: they are neither predicted change nor reference change.

``TPR = TP / (TP + FN)`` and ``FDR = FP / (TP + FP)`` (0 when the denominator is 0).
Counts are torchmetrics sum states, so they are exact across processes.

The rates are always reported with ``event_pred_components`` (predicted components,
after the size rule) and ``event_ref_components`` (reference components): a model that
marks a whole tile as change makes ONE component per tile, which touches every fragment
of it, so it reads TPR 1.0 and FDR 0.0 on tiles with fragments (issue 13). The component
count (one per tile, far fewer than the references) and ``event_pred_pixel_fraction``
(share of counted pixels predicted as change; 1.0 for that model) show it.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from mars_core.connected import components
from mars_core.masking import IGNORE


def event_components(pred: np.ndarray, ref: np.ndarray, min_size: int = 1) -> tuple[int, int, int, int, int]:
    """(TP, FP, FN, predicted components, reference components) for one 2-D pair of boolean maps."""
    p_lab, n_p = components(pred.astype(bool), min_size)
    r_lab, n_r = components(ref.astype(bool), min_size)
    overlap = (p_lab > 0) & (r_lab > 0)
    found_refs = np.unique(r_lab[overlap])
    hitting_preds = np.unique(p_lab[overlap])
    tp = int(found_refs.size)
    fp = n_p - int(hitting_preds.size)
    fn = n_r - tp
    return tp, fp, fn, int(n_p), int(n_r)


def event_counts(pred: np.ndarray, ref: np.ndarray, min_size: int = 1) -> tuple[int, int, int]:
    """(TP, FP, FN) for one 2-D image pair of boolean maps."""
    return event_components(pred, ref, min_size)[:3]


class EventMetric(Metric):
    """Event TPR / FDR over a whole split (see the module docstring for the rules)."""

    full_state_update = False
    higher_is_better = None

    def __init__(self, threshold: float = 0.5, min_size: int = 1) -> None:
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError("threshold must be in (0, 1)")
        if min_size < 1:
            raise ValueError("min_size must be >= 1")
        self.threshold = threshold
        self.min_size = min_size
        for name in ("tp", "fp", "fn", "n_pred", "n_ref", "pred_px", "counted_px"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        counted = target.detach() != IGNORE
        pred = ((probs.detach() >= self.threshold) & counted).cpu().numpy()
        ref = ((target.detach() > 0.5) & counted).cpu().numpy()
        pred = pred.reshape(-1, *pred.shape[-2:])
        ref = ref.reshape(-1, *ref.shape[-2:])
        tp = fp = fn = n_pred = n_ref = 0
        for p, r in zip(pred, ref, strict=False):
            a, b, c, d, e = event_components(p, r, self.min_size)
            tp, fp, fn, n_pred, n_ref = tp + a, fp + b, fn + c, n_pred + d, n_ref + e
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.n_pred += n_pred
        self.n_ref += n_ref
        self.pred_px += int(pred.sum())
        self.counted_px += int(counted.sum())

    def compute(self) -> dict[str, torch.Tensor]:
        tp, fp, fn = self.tp, self.fp, self.fn
        tpr = torch.where(tp + fn > 0, tp / (tp + fn).clamp_min(1), torch.zeros_like(tp))
        fdr = torch.where(tp + fp > 0, fp / (tp + fp).clamp_min(1), torch.zeros_like(tp))
        share = self.pred_px / self.counted_px.clamp_min(1)
        return {"event_tpr": tpr, "event_fdr": fdr, "event_tp": tp.clone(), "event_fp": fp.clone(),
                "event_fn": fn.clone(), "event_pred_components": self.n_pred.clone(),
                "event_ref_components": self.n_ref.clone(), "event_pred_pixel_fraction": share}
