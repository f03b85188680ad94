"""Is the model saying anything? Prediction statistics that expose a degenerate model.

A model that outputs one constant, or the same class for every pixel of a split that holds
two, can still post flattering numbers: recall 1.0 when everything is "change", event TPR
1.0 when one scene-wide blob covers every reference, accuracy 0.82 when every chip is "no
ice". Metrics alone do not say so; these statistics do. The engine accumulates them beside
the metrics on every final evaluation, writes ``"degenerate": true`` and the reason into the
run summary, and the registry never makes such a model the champion.

Hard decisions use 0.5 on sigmoid maps and the arg-max on softmax classes, as the built-in
metrics do. Pixels marked :data:`~mars_core.masking.IGNORE` are left out.
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from mars_core.masking import IGNORE
from mars_core.tasks import TaskKind

#: A split whose probabilities all lie within this span is "constant output".
CONSTANT_SPAN = 1e-4
#: Upper bound on the number of classes tracked (classification heads larger than this
#: are checked for constant output only).
MAX_CLASSES = 1024


class PredictionHealth(Metric):
    """Range of the probabilities and counts of predicted and reference classes over a split.

    A torchmetrics ``Metric`` so that under ``torchrun`` the shards of all ranks are reduced
    the same way the task metrics are.
    """

    full_state_update = False

    def __init__(self, kind: TaskKind) -> None:
        super().__init__()
        self.kind = TaskKind(kind)
        self.add_state("low", default=torch.tensor(float("inf")), dist_reduce_fx="min")
        self.add_state("high", default=torch.tensor(float("-inf")), dist_reduce_fx="max")
        self.add_state("predicted", default=torch.zeros(MAX_CLASSES, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("reference", default=torch.zeros(MAX_CLASSES, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:  # type: ignore[override]
        probs = probs.detach().float()
        if self.kind is TaskKind.CLASSIFICATION:
            valid = target.reshape(-1) != IGNORE
            p = probs.reshape(probs.shape[0], -1)[valid]
            hard = p.argmax(dim=1) if p.numel() else p.new_zeros(0, dtype=torch.long)
            ref = target.reshape(-1)[valid].long()
            classes = probs.shape[1] if probs.dim() > 1 else 1
        else:
            p, hard, ref = self._map_values(probs, target)
            classes = 2
        if p.numel():
            self.low = torch.minimum(self.low, p.min())
            self.high = torch.maximum(self.high, p.max())
        if classes <= MAX_CLASSES:
            keep = (ref >= 0) & (ref < MAX_CLASSES)
            self.predicted += torch.bincount(hard.clamp(0, MAX_CLASSES - 1), minlength=MAX_CLASSES)
            self.reference += torch.bincount(ref[keep], minlength=MAX_CLASSES)

    @staticmethod
    def _map_values(probs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Sigmoid maps: one channel compared with the mask pixel by pixel. A multi-channel
        map whose mask does not line up is checked for constant output only."""
        flat_p = probs.reshape(-1)
        flat_t = target.reshape(-1)
        if flat_p.numel() != flat_t.numel():
            empty = flat_p.new_zeros(0, dtype=torch.long)
            return flat_p, empty, empty
        valid = flat_t != IGNORE
        p = flat_p[valid]
        return p, (p >= 0.5).long(), flat_t[valid].long()

    def compute(self) -> dict[str, Any]:  # type: ignore[override]
        pred = {i: int(n) for i, n in enumerate(self.predicted.tolist()) if n}
        ref = {i: int(n) for i, n in enumerate(self.reference.tolist()) if n}
        low, high = float(self.low), float(self.high)
        span = high - low if high >= low else float("nan")
        return {"probability_min": low, "probability_max": high, "probability_span": span,
                "predicted_classes": pred, "reference_classes": ref}


def degenerate_reason(stats: dict[str, Any]) -> str | None:
    """Why a split's predictions are degenerate, or ``None`` when they are not.

    Constant output is degenerate whatever the reference; predicting one class everywhere
    is degenerate only when the split's reference holds more than one class (a model that
    finds no landslide on tiles without landslides is right, not broken).
    """
    span = stats.get("probability_span")
    if span is not None and span == span and span < CONSTANT_SPAN:
        return (f"constant output (every probability in [{stats['probability_min']:.4g}, "
                f"{stats['probability_max']:.4g}])")
    pred, ref = stats.get("predicted_classes") or {}, stats.get("reference_classes") or {}
    if len(pred) == 1 and len(ref) > 1:
        (cls, n), = pred.items()
        return f"predicts class {cls} for all {n} counted pixels/samples, though the reference holds {len(ref)} classes"
    return None


def summarise_health(per_split: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run-summary fields: ``degenerate``, ``degenerate_reason`` (``split: reason; ...``) and
    the statistics per split, ready for JSON."""
    reasons = {split: r for split, stats in per_split.items() if (r := degenerate_reason(stats))}
    return {
        "degenerate": bool(reasons),
        "degenerate_reason": "; ".join(f"{s}: {r}" for s, r in reasons.items()) or None,
        "prediction_health": {s: {k: (v if not isinstance(v, dict) else {str(c): n for c, n in v.items()})
                                  for k, v in stats.items()} for s, stats in per_split.items()},
    }
