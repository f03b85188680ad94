"""The paper's loss against a direct computation; event metric rules on hand-made masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mars_core import plugins
from mars_icefrag.losses import WeightedBCE, icefrag_loss
from mars_icefrag.metrics import EventMetric, event_counts


def test_icefrag_loss_matches_direct_computation() -> None:
    logits = torch.tensor([[[[2.0, -1.0], [0.5, -3.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    total_focal = 0.0
    inter = psum = tsum = 0.0
    for z, t in zip(logits.flatten().tolist(), target.flatten().tolist(), strict=False):
        p = 1 / (1 + math.exp(-z))
        pt = p if t == 1 else 1 - p
        at = 0.25 if t == 1 else 0.75
        total_focal += -at * (1 - pt) ** 2 * math.log(pt)
        inter += p * t
        psum += p
        tsum += t
    focal = total_focal / 4
    dice = (2 * inter + 1) / (psum + tsum + 1)
    expected = 0.1 * focal + 0.9 * (-math.log(dice))
    assert float(icefrag_loss()(logits, target)) == pytest.approx(expected, rel=1e-5)
    plugins.reset()
    reg = plugins.get_registries()
    assert float(reg.losses.get("icefrag-loss")()(logits, target)) == pytest.approx(expected, rel=1e-5)


def test_weighted_bce_auto_weight() -> None:
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    # pos weight 3 (3 negatives / 1 positive): mean of (3*log2, log2, log2, log2)
    assert float(WeightedBCE()(logits, target)) == pytest.approx(6 * math.log(2) / 4, rel=1e-6)
    assert float(WeightedBCE(2.0)(logits, target)) == pytest.approx(5 * math.log(2) / 4, rel=1e-6)


def _blank(h: int = 20, w: int = 20) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


def test_event_several_detections_on_one_fragment_count_once() -> None:
    ref = _blank()
    ref[2:10, 2:10] = True
    pred = _blank()
    pred[2:5, 2:5] = True  # 9 px, touches
    pred[7:10, 7:10] = True  # 9 px, touches the same fragment
    assert event_counts(pred, ref) == (1, 0, 0)


def test_event_fp_fn_and_touching() -> None:
    ref = _blank()
    ref[0:3, 0:3] = True  # found
    ref[15:18, 15:18] = True  # missed -> FN
    pred = _blank()
    pred[2:5, 2:5] = True  # overlaps first reference at one pixel (2,2)
    pred[10:13, 0:3] = True  # touches nothing -> FP
    assert event_counts(pred, ref) == (1, 1, 1)


def test_event_keeps_every_component_by_default_and_min_size_drops_from_both() -> None:
    ref = _blank()
    ref[0:2, 0:2] = True  # 4 px
    ref[10:13, 10:13] = True
    pred = _blank()
    pred[19, 19] = True  # 1 px, touches nothing
    pred[10:12, 10:12] = True  # 4 px on the second reference
    # as published: every component counts (the 5-px rule is the association analysis's)
    assert event_counts(pred, ref) == (1, 1, 1)
    # the round-1 rule, still an option: small components leave BOTH maps
    assert event_counts(pred, ref, min_size=5) == (0, 0, 1)


def test_all_change_prediction_is_visible_in_the_component_counts() -> None:
    """A scene-wide blob reads TPR 1.0 / FDR 0.0 on tiles with fragments; the counts show it."""
    ref = torch.zeros(3, 1, 32, 32)
    ref[0, 0, 2:6, 2:6] = 1
    ref[0, 0, 20:24, 20:24] = 1
    ref[1, 0, 10:14, 3:7] = 1
    ref[2, 0, 1:3, 28:31] = 1
    m = EventMetric()
    m.update(torch.ones(3, 1, 32, 32), ref)  # constant "all change"
    out = {k: float(v) for k, v in m.compute().items()}
    assert out["event_tpr"] == 1.0 and out["event_fdr"] == 0.0  # what the rates alone say
    assert out["event_pred_components"] == 3  # one blob per tile ...
    assert out["event_ref_components"] == 4  # ... for more fragments than that
    assert out["event_pred_pixel_fraction"] == 1.0
    good = EventMetric()
    good.update(ref.clone(), ref)
    counts = {k: float(v) for k, v in good.compute().items()}
    assert counts["event_pred_components"] == 4 and counts["event_pred_pixel_fraction"] < 0.05


def test_event_eight_connectivity() -> None:
    ref = _blank()
    ref[5:8, 5:8] = True
    pred = _blank()
    for i in range(6):
        pred[i, i] = True  # a diagonal line: one component with 8-connectivity
    pred[8:11, 8:11] = True  # diagonal neighbour of the line? no: separate, touches nothing
    tp, fp, fn = event_counts(pred, ref)
    assert (tp, fn) == (1, 0)
    assert fp == 1


def test_event_metric_accumulates_and_computes() -> None:
    m = EventMetric()
    ref = torch.zeros(2, 1, 20, 20)
    ref[0, 0, 2:10, 2:10] = 1
    ref[1, 0, 2:6, 2:6] = 1
    probs = torch.zeros(2, 1, 20, 20)
    probs[0, 0, 2:5, 2:5] = 0.9
    probs[0, 0, 7:10, 7:10] = 0.8
    probs[1, 0, 12:16, 12:16] = 0.7  # FP; second reference missed
    m.update(probs, ref)
    out = m.compute()
    assert float(out["event_tp"]) == 1 and float(out["event_fp"]) == 1 and float(out["event_fn"]) == 1
    assert float(out["event_tpr"]) == pytest.approx(0.5)
    assert float(out["event_fdr"]) == pytest.approx(0.5)


def test_ignored_pixels_change_neither_losses_nor_event_metric() -> None:
    from mars_core.masking import IGNORE
    from mars_icefrag.losses import WeightedBCE, icefrag_loss
    from mars_icefrag.metrics import EventMetric

    g = torch.Generator().manual_seed(3)
    logits = torch.full((1, 1, 32, 32), -6.0)
    target = torch.zeros(1, 1, 32, 32)
    target[0, 0, 4:10, 4:10] = 1
    logits[0, 0, 4:10, 4:10] = 6.0
    target[0, 0, 20:, :] = IGNORE
    garbage = logits.clone()
    garbage[0, 0, 20:, :] = torch.randn(12, 32, generator=g) * 40 + 20  # a big "detection" where nothing counts
    for loss in (icefrag_loss(), WeightedBCE()):
        assert torch.allclose(loss(logits, target), loss(garbage, target), atol=1e-6)
    counts = []
    for x in (logits, garbage):
        m = EventMetric()
        m.update(x.sigmoid(), target)
        counts.append({k: float(v) for k, v in m.compute().items()})
    assert counts[0] == counts[1] and counts[0]["event_tp"] == 1 and counts[0]["event_fp"] == 0
