"""Optimizers and per-epoch learning-rate schedules.

The schedule is a closed-form function of the epoch index (see :func:`lr_factor`) wrapped in
``LambdaLR``: the learning rate of an epoch never depends on how many times ``step`` was
called in this process, which keeps resumed runs on the same curve. Epochs here are
0-based; ``lr`` logged for epoch ``e`` (1-based in the history) is ``base * lr_factor(e-1)``.

Warmup (``warmup_epochs = W``) ramps linearly ``(e+1)/(W+1)`` for ``e < W`` and then the
chosen schedule starts at its epoch 0, so no epoch is spent at zero learning rate.
Cosine anneals from ``lr`` towards ``min_lr`` over the post-warmup epochs (like
``CosineAnnealingLR(T_max=epochs - W)``): the last epoch is just above ``min_lr``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from mars_core.config import SchedulerConfig, TrainerConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], trainer: TrainerConfig) -> torch.optim.Optimizer:
    if trainer.optimizer == "adam":
        return torch.optim.Adam(params, lr=trainer.lr, weight_decay=trainer.weight_decay)
    if trainer.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=trainer.lr, weight_decay=trainer.weight_decay)
    return torch.optim.SGD(params, lr=trainer.lr, momentum=trainer.momentum,
                           weight_decay=trainer.weight_decay)


def _cos_between(start: float, end: float, p: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * p)) / 2


def onecycle_factor(progress: float, sched: SchedulerConfig) -> float:
    """One-cycle multiplier at ``progress`` in [0, 1] of the whole training run."""
    t = min(max(progress, 0.0), 1.0)
    start = 1.0 / sched.div_factor
    if t < sched.pct_start:
        return _cos_between(start, 1.0, t / sched.pct_start)
    return _cos_between(1.0, start / sched.final_div_factor, (t - sched.pct_start) / (1 - sched.pct_start))


def lr_factor(epoch: float, sched: SchedulerConfig, epochs: int, base_lr: float) -> float:
    """Multiplier of the base learning rate for 0-based ``epoch`` (fractional for
    ``onecycle``, whose rate is a function of the exact position in training)."""
    if sched.name == "onecycle":
        return onecycle_factor(epoch / max(1, epochs), sched)
    w = sched.warmup_epochs
    if epoch < w:
        return (epoch + 1) / (w + 1)
    e = epoch - w
    if sched.name == "step":
        return sched.gamma ** (e // sched.step_size)
    if sched.name == "exponential":
        return sched.gamma**e
    if sched.name == "cosine":
        span = max(1, epochs - w)
        floor = min(sched.min_lr / base_lr, 1.0)
        return floor + (1 - floor) * (1 + math.cos(math.pi * min(e, span) / span)) / 2
    return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, trainer: TrainerConfig) -> LambdaLR:
    sched, epochs, base = trainer.scheduler, trainer.epochs, trainer.lr

    def factor(epoch: int) -> float:
        return lr_factor(epoch, sched, epochs, base)

    return LambdaLR(optimizer, factor)


def set_step_lr(scheduler: LambdaLR, sched: SchedulerConfig, epochs: int, base_lr: float,
                epoch0: int, step: int, steps: int) -> None:
    """Per-step schedules set the rate before each optimiser step from the closed form, so
    a resumed run follows the same curve; per-epoch schedules are left to ``step()``."""
    if sched.name != "onecycle":
        return
    factor = lr_factor(epoch0 + step / max(1, steps), sched, epochs, base_lr)
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base * factor


def sync_lr(scheduler: LambdaLR) -> None:
    """Set each group's lr from the schedule at ``last_epoch`` (after loading a checkpoint,
    possibly with a larger ``epochs``, which changes the cosine span)."""
    groups = scheduler.optimizer.param_groups
    for group, base, fn in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]  # type: ignore[attr-defined]
