"""glacier_map: MCC and per-class IoU against hand computations; IGNORE never counts."""

from __future__ import annotations

import math

import torch

from mars_glacier.metrics import GlacierMapMetrics, confusion_scores


def test_against_hand_counts() -> None:
    target = torch.tensor([1, 1, 1, 0, 0, 255, 1, 0], dtype=torch.float32).view(1, 1, 2, 4)
    probs = torch.tensor([0.9, 0.8, 0.1, 0.7, 0.2, 0.9, 0.6, 0.3]).view(1, 1, 2, 4)
    m = GlacierMapMetrics()
    m.update(probs, target)
    out = {k: float(v) for k, v in m.compute().items()}
    tp, fp, fn, tn = 3, 1, 1, 2  # the 255 pixel is left out
    mcc = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert math.isclose(out["mcc"], mcc, rel_tol=1e-9)
    assert math.isclose(out["iou_glacier"], tp / (tp + fp + fn))
    assert math.isclose(out["iou_other"], tn / (tn + fp + fn))
    assert math.isclose(out["miou"], (tp / (tp + fp + fn) + tn / (tn + fp + fn)) / 2)
    assert math.isclose(out["balanced_accuracy"], (tp / (tp + fn) + tn / (tn + fp)) / 2)


def test_all_glacier_predictor_has_mcc_zero_but_a_high_f1() -> None:
    s = confusion_scores(tp=740, fp=260, fn=0, tn=0)
    assert s["mcc"] == 0.0 and s["iou_other"] == 0.0
    assert s["f1"] > 0.85 and math.isclose(s["miou"], 0.37)
