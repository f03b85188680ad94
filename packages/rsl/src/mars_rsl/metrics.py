"""The RSL paper's figures: sensitivity, specificity, FDR and balanced accuracy, per pixel
and per lineae event.

Per pixel (probabilities thresholded at ``threshold``; IGNORE pixels skipped):
``sensitivity = TP/(TP+FN)``, ``specificity = TN/(TN+FP)``, ``fdr = FP/(TP+FP)``,
``balanced_accuracy = (sensitivity + specificity)/2`` over the whole split (confusion counts
summed, so a split's figure does not depend on batching).

Per event: a lineae is an 8-connected component of the reference (>= ``min_size`` px); it
is found when a predicted component touches it; a predicted component touching none is a
false detection. ``event_sensitivity = found/(found+missed)``, ``event_fdr =
false/(true+false)`` where true counts predicted components touching a lineae. Events
have no true negatives, so there is no event specificity or balanced accuracy.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from mars_core.connected import components
from mars_core.masking import IGNORE


def event_counts(pred: np.ndarray, ref: np.ndarray, min_size: int = 5) -> tuple[int, int, int, int]:
    """(references found, references missed, predictions on a reference, predictions on none)."""
    p_lab, n_p = components(pred, min_size)
    r_lab, n_r = components(ref, min_size)
    both = (p_lab > 0) & (r_lab > 0)
    found = int(np.unique(r_lab[both]).size)
    hits = int(np.unique(p_lab[both]).size)
    return found, n_r - found, hits, n_p - hits


def rates(tp: float, fp: float, tn: float, fn: float) -> dict[str, float]:
    sens = tp / (tp + fn) if tp + fn else 0.0
    spec = tn / (tn + fp) if tn + fp else 0.0
    fdr = fp / (tp + fp) if tp + fp else 0.0
    return {"sensitivity": sens, "specificity": spec, "fdr": fdr, "balanced_accuracy": (sens + spec) / 2}


class RSLMetric(Metric):
    full_state_update = False
    higher_is_better = None

    def __init__(self, threshold: float = 0.5, min_size: int = 5) -> None:
        super().__init__()
        if not 0 < threshold < 1:
            raise ValueError("threshold must be in (0, 1)")
        self.threshold, self.min_size = threshold, int(min_size)
        for name in ("tp", "fp", "tn", "fn", "ev_found", "ev_missed", "ev_hit", "ev_false"):
            self.add_state(name, default=torch.tensor(0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        counted = target.detach() != IGNORE
        pred = (probs.detach() >= self.threshold) & counted
        ref = (target.detach() > 0.5) & counted
        self.tp += (pred & ref).sum()
        self.fp += (pred & ~ref).sum()
        self.fn += (~pred & ref).sum()
        self.tn += (~pred & ~ref & counted).sum()
        p = pred.cpu().numpy().reshape(-1, *pred.shape[-2:])
        r = ref.cpu().numpy().reshape(-1, *ref.shape[-2:])
        for a, b in zip(p, r, strict=True):
            f, m, h, x = event_counts(a, b, self.min_size)
            self.ev_found += f
            self.ev_missed += m
            self.ev_hit += h
            self.ev_false += x

    def compute(self) -> dict[str, torch.Tensor]:
        out = {k: torch.tensor(v, dtype=torch.float64) for k, v in
               rates(float(self.tp), float(self.fp), float(self.tn), float(self.fn)).items()}
        found, missed, hit, false = (float(x) for x in (self.ev_found, self.ev_missed, self.ev_hit, self.ev_false))
        sens = found / (found + missed) if found + missed else 0.0
        out["event_sensitivity"] = torch.tensor(sens, dtype=torch.float64)
        out["event_fdr"] = torch.tensor(false / (hit + false) if hit + false else 0.0, dtype=torch.float64)
        return out
