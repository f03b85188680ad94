"""The classification loss and metric against hand computations on tiny fixed examples."""

from __future__ import annotations

import math

import pytest
import torch

from mars_core.builtin.losses import cross_entropy
from mars_core.builtin.metrics import ClassificationMetrics


def test_cross_entropy_matches_the_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]])
    labels = torch.tensor([0, 1])
    # -log softmax at the true class, averaged over the batch
    z0 = math.log(math.exp(2.0) + 1.0 + math.exp(-1.0))
    z1 = math.log(2 * math.exp(0.5) + math.exp(3.0))
    expected = ((z0 - 2.0) + (z1 - 0.5)) / 2
    assert float(cross_entropy()(logits, labels)) == pytest.approx(expected, rel=1e-6)
    # label smoothing eps: (1-eps) * CE + eps * mean over classes of -log p_k
    eps = 0.3
    logp = torch.log_softmax(logits, dim=1)
    smooth = ((1 - eps) * -logp[torch.arange(2), labels] + eps * -logp.mean(dim=1)).mean()
    assert float(cross_entropy(label_smoothing=eps)(logits, labels)) == pytest.approx(float(smooth), rel=1e-6)


def test_binary_scores_by_hand():
    # p(positive) per sample and truth; argmax picks positive when p > 0.5
    p = torch.tensor([0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.7, 0.4])
    y = torch.tensor([1, 1, 1, 0, 0, 0, 0, 1])
    m = ClassificationMetrics(num_classes=2)
    m.update(torch.stack([1 - p[:5], p[:5]], 1), y[:5])  # two batches: whole-split accumulation
    m.update(torch.stack([1 - p[5:], p[5:]], 1), y[5:])
    out = {k: float(v) for k, v in m.compute().items()}
    tp, fn, fp, tn = 2, 2, 2, 2  # predicted positive: .9 .8 .6 .7 -> truths 1 1 0 0
    assert out["accuracy"] == pytest.approx((tp + tn) / 8)
    assert out["balanced_accuracy"] == pytest.approx((tp / (tp + fn) + tn / (tn + fp)) / 2)
    assert out["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    # AUROC = fraction of (positive, negative) pairs ranked correctly
    pos, neg = p[y == 1], p[y == 0]
    pairs = [(float(a) > float(b)) + 0.5 * (float(a) == float(b)) for a in pos for b in neg]
    assert out["auroc"] == pytest.approx(sum(pairs) / len(pairs))


def test_three_class_scores_by_hand():
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    preds = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    probs = torch.nn.functional.one_hot(preds, 3).float() * 0.8 + 0.2 / 3
    m = ClassificationMetrics(num_classes=3)
    m.update(probs, labels)
    out = {k: float(v) for k, v in m.compute().items()}
    recall = [1 / 2, 2 / 2, 2 / 3]
    precision = [1 / 2, 2 / 3, 2 / 2]
    f1 = [2 * a * b / (a + b) for a, b in zip(precision, recall, strict=True)]
    assert out["accuracy"] == pytest.approx(5 / 7)
    assert out["balanced_accuracy"] == pytest.approx(sum(recall) / 3)
    assert out["f1"] == pytest.approx(sum(f1) / 3) and out["macro_f1"] == out["f1"]
    assert 0.5 < out["auroc"] <= 1.0


def test_empty_and_one_class_splits_do_not_crash():
    m = ClassificationMetrics(num_classes=2)
    assert set(m.compute()) == {"accuracy", "balanced_accuracy", "f1", "macro_f1", "macro_recall", "auroc"}
    m.update(torch.tensor([[0.2, 0.8], [0.6, 0.4]]), torch.tensor([1, 1]))
    assert float(m.compute()["auroc"]) == 0.0  # no negative: no ROC curve
    with pytest.raises(ValueError, match=r"\[B,2\]"):
        m.update(torch.rand(2, 3), torch.tensor([0, 1]))
