"""The decision threshold, chosen on validation chips and stored in the model's weights.

Why: with 18 % ice chips a model trained for a few epochs ranks ice above the rest (AUROC
0.75-0.93 in BENCHMARK.md) while its p stays under 0.5 for most ice chips, so the fixed 0.5
cut loses the balanced accuracy. The cut is chosen on the VALIDATION split (never the test
split) for the best balanced accuracy, and stored in the model as a buffer
``decision_logit`` = logit(t), subtracted from the "ice" logit by a forward hook:

    p' = softmax([a, b - logit(t)])[1] = sigmoid(b - a - logit(t)),  p' >= 0.5  <=>  p >= t.

So everything that loads the model (``evaluate``, ``predict``' argmax class and verdicts,
``icepatch verdicts``) uses the chosen cut with no setting of its own, and the verdict rules
(an icy chunk has p' >= 0.6, ...) read p' on the scale where 0.5 is the decision. A model
saved before this buffer existed loads with t = 0.5 (logit 0).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from mars_core.errors import MarsError

BUFFER = "decision_logit"
#: Thresholds are kept inside [T_MIN, 1 - T_MIN]: logit(t) stays finite.
T_MIN = 1e-4


def _shift(module: nn.Module, _inputs: Any, logits: torch.Tensor) -> torch.Tensor:
    offset = getattr(module, BUFFER)
    if logits.ndim != 2 or logits.shape[1] != 2:
        return logits
    return torch.cat([logits[:, :1], logits[:, 1:] - offset.to(logits.dtype)], dim=1)


def _default_when_missing(module: nn.Module, state: dict[str, Any], prefix: str, *_args: Any) -> None:
    state.setdefault(prefix + BUFFER, torch.zeros(()))


def with_decision_threshold(model: nn.Module) -> nn.Module:
    """Give a two-logit classifier the ``decision_logit`` buffer (0: t = 0.5) and the hook."""
    model.register_buffer(BUFFER, torch.zeros(()))
    model.register_forward_hook(_shift)
    model._register_load_state_dict_pre_hook(_default_when_missing, with_module=True)
    return model


def decision_threshold(model: nn.Module) -> float:
    """t of the model (0.5 when it has no buffer)."""
    buf = getattr(model, BUFFER, None)
    return 0.5 if buf is None else float(torch.sigmoid(buf))


def set_decision_threshold(model: nn.Module, t: float) -> None:
    """Store t. t is on the UNSHIFTED p scale: choose it from p computed with the buffer at 0
    (``set_decision_threshold(model, 0.5)`` first)."""
    if not hasattr(model, BUFFER):
        raise MarsError("this model has no decision threshold buffer (not built by mars-icepatch)")
    if not 0.0 < t < 1.0:
        raise MarsError(f"decision threshold must be in (0, 1), got {t}")
    t = min(max(t, T_MIN), 1.0 - T_MIN)
    getattr(model, BUFFER).fill_(math.log(t / (1.0 - t)))


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    recalls = [float((pred[y == k] == k).mean()) for k in (0, 1) if (y == k).any()]
    return float(np.mean(recalls))


def choose_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The cut with the best balanced accuracy on (p, y) - VALIDATION chips. Candidates are
    midpoints between neighbouring distinct p (a cut on a value would depend on ties); among
    equal scores the one nearest 0.5 (the least departure from the trained model)."""
    p, y = np.asarray(p, np.float64), np.asarray(y).astype(int)
    if p.shape != y.shape or p.size == 0:
        raise MarsError("choose_threshold: needs as many labels as probabilities, at least one")
    if y.min() == y.max():
        raise MarsError("choose_threshold: the validation chips hold one class only; no cut can be chosen")
    u = np.unique(p)
    cands = np.concatenate([[0.5], (u[:-1] + u[1:]) / 2]) if u.size > 1 else np.array([0.5])
    cands = np.clip(cands, T_MIN, 1.0 - T_MIN)
    scores = np.array([balanced_accuracy(y, (p >= t).astype(int)) for t in cands])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(cands[best[np.argmin(np.abs(cands[best] - 0.5))]])
