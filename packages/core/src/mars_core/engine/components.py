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


def metric_factories(metric_cfgs: list[Component], registries: Registries,
                     contract: InputContract | None = None) -> list[MetricFactory]:
    """Resolve metric configs; each is built once here so bad parameters fail up front.

    With a classification ``contract``, a metric whose factory takes ``num_classes`` gets
    ``len(contract.classes)`` unless its config sets it: the classes are said once, by the
    data source, rather than repeated (and possibly contradicted) in every metric."""
    out = []
    for mc in metric_cfgs:
        factory = registries.metrics.get(mc.name)
        params = mc.params
        if contract is not None and TaskKind(contract.kind) is TaskKind.CLASSIFICATION \
                and "num_classes" not in params and accepts(factory, "num_classes"):
            params["num_classes"] = len(contract.classes)
        build = functools.partial(call_factory, "metric", mc.name, factory, params)
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
    model_params = fill_from_contract(model_factory, model_params, contract, cfg.model.name)
    model = call_factory("model", cfg.model.name, model_factory, model_params)
    if not isinstance(model, nn.Module):
        raise MarsError(f"model '{cfg.model.name}' must return a torch.nn.Module, got {type(model).__name__}")
    if task.kind is TaskKind.CLASSIFICATION:
        check_class_outputs(model, contract, cfg.model.name)

    loss = call_factory("loss", cfg.loss.name, regs.losses.get(cfg.loss.name), cfg.loss.params)
    if not callable(loss):
        raise MarsError(f"loss '{cfg.loss.name}' must return a callable, got {type(loss).__name__}")

    return Components(task=task, source=source, contract=contract, model=model, loss=loss,
                      metrics=metric_factories(cfg.metrics, regs, contract))


def fill_from_contract(factory: Callable[..., Any], params: dict[str, Any],
                       contract: InputContract, name: str = "") -> dict[str, Any]:
    """``in_channels`` (number of bands) and, for classification, ``num_classes`` (number of
    classes) from the contract, when the factory takes them and the config leaves them out;
    ``subclasses`` (sub-classes per class) when the data source trains on finer labels, which
    a model must then take: it is built with one logit per sub-class and returns the
    classes' logits in eval mode (so metrics, thresholds and predict see the classes).
    Training and reloading a stored model both go through here, so they build the same net."""
    out = dict(params)
    if "in_channels" not in out and accepts(factory, "in_channels"):
        out["in_channels"] = len(contract.bands)
    if TaskKind(contract.kind) is TaskKind.CLASSIFICATION and "num_classes" not in out \
            and accepts(factory, "num_classes"):
        out["num_classes"] = len(contract.classes)
    if contract.subclasses and "subclasses" not in out:
        if not accepts(factory, "subclasses"):
            summary = "; ".join(f"{c}: {', '.join(sub)}" for c, sub in contract.subclasses.items())
            raise MarsError(f"the data source trains on sub-classes ({summary}) but model "
                            f"'{name}' takes no 'subclasses'; choose a model that does or train on the classes")
        out["subclasses"] = [len(contract.subclasses[c]) for c in contract.classes]
    return out


def check_class_outputs(model: nn.Module, contract: InputContract, name: str) -> None:
    """One forward pass on a tiny zero batch before training: a classifier whose output width
    is not the number of classes would otherwise fail deep inside the loss (a raw
    RuntimeError) or, worse, train against the wrong classes.

    Binary classification uses two logits with softmax, like any K: a single-logit (sigmoid)
    model is refused here, so that probabilities, metrics and the scene outputs have one form.
    """
    k = len(contract.classes)
    x = torch.zeros(2, len(contract.bands), contract.tile_size, contract.tile_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[1] != k:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        hint = (" (binary classification takes 2 logits with softmax, not 1)" if k == 2 and
                isinstance(out, torch.Tensor) and out.ndim == 2 and out.shape[1] == 1 else "")
        raise MarsError(f"model '{name}' returns {got} but the data source has {k} classes "
                        f"({', '.join(contract.classes)}); expected [B,{k}]{hint}. "
                        f"Remove model.num_classes from the config or set it to {k}")
