"""Turning a :class:`RunConfig` into live objects through the registries.

Everything is resolved by name with :func:`mars_core.registry.call_factory`, so a wrong
parameter is reported with the configuration key and the accepted ones, before any data is
read or any weight is allocated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchmetrics import Metric

from mars_core.config import Component, RunConfig
from mars_core.data import DataSource, InputContract
from mars_core.errors import MarsError
from mars_core.plugins import Registries, get_registries
from mars_core.registry import accepts, call_factory
from mars_core.tasks import TaskKind, TaskSpec


@dataclass(frozen=True)
class MetricFactory:
    """A configured metric that can be instantiated afresh for every split and epoch.

    Fresh instances (rather than ``reset()``) keep evaluation of one split from ever
    leaking state into another, whatever a third-party metric's ``reset`` forgets.
    """

    name: str
    build: Callable[[], Metric]


@dataclass
class Components:
    """The resolved parts of a run; ``model`` is the plain (unwrapped, CPU) module."""

    task: TaskSpec
    source: DataSource
    contract: InputContract
    model: nn.Module
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    metrics: list[MetricFactory]

    @property
    def kind(self) -> TaskKind:
        return self.task.kind


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; asking for an absent accelerator is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MarsError(f"trainer.device is '{name}' but CUDA is not available; use cpu or auto")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MarsError(
                f"trainer.device is '{name}' but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
        return dev
    if name == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise MarsError("trainer.device is 'mps' but MPS is not available; use cpu or auto")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise MarsError(f"trainer.device '{name}' is not one of auto, cpu, cuda, cuda:N, mps")


def metric_factories(metric_cfgs: list[Component], registries: Registries) -> list[MetricFactory]:
    """Resolve metric configs; each is built once here so bad parameters fail up front."""
    out = []
    for mc in metric_cfgs:
        factory = registries.metrics.get(mc.name)
        build = functools.partial(call_factory, "metric", mc.name, factory, mc.params)
        probe = build()
        if not isinstance(probe, Metric):
            raise MarsError(
                f"metric '{mc.name}' must return a torchmetrics.Metric, got {type(probe).__name__}"
            )
        out.append(MetricFactory(mc.name, build))
    return out


def build_components(cfg: RunConfig, registries: Registries | None = None) -> Components:
    """Resolve task, data source, contract, model, loss and metrics for ``cfg``."""
    regs = registries if registries is not None else get_registries()
    task = regs.task(cfg.task)

    ds_factory = regs.datasources.get(cfg.data.name)
    ds_params = {"root": cfg.data.root, **cfg.data.params}
    source = call_factory("data source", cfg.data.name, ds_factory, ds_params)
    contract = source.input_contract()
    if TaskKind(contract.kind) is not task.kind:
        raise MarsError(
            f"data source '{cfg.data.name}' provides {TaskKind(contract.kind).value} data "
            f"but task '{task.name}' is {task.kind.value}"
        )

    model_factory = regs.models.get(cfg.model.name)
    model_params: dict[str, Any] = cfg.model.params
    if accepts(model_factory, "in_channels") and "in_channels" not in model_params:
        model_params["in_channels"] = len(contract.bands)
    model = call_factory("model", cfg.model.name, model_factory, model_params)
    if not isinstance(model, nn.Module):
        raise MarsError(f"model '{cfg.model.name}' must return a torch.nn.Module, got {type(model).__name__}")

    loss = call_factory("loss", cfg.loss.name, regs.losses.get(cfg.loss.name), cfg.loss.params)
    if not callable(loss):
        raise MarsError(f"loss '{cfg.loss.name}' must return a callable, got {type(loss).__name__}")

    return Components(task=task, source=source, contract=contract, model=model, loss=loss,
                      metrics=metric_factories(cfg.metrics, regs))
