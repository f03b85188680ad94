"""Whole-split evaluation shared by validation, the final report and ``mars-core evaluate``.

Metrics accumulate over a whole split and are computed once (never averaged per batch);
under ``torchrun`` each rank sees a disjoint shard and torchmetrics reduces the states.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, default_collate
from torchmetrics import Metric

from mars_core.config import Component
from mars_core.data import InputContract
from mars_core.errors import MarsError
from mars_core.plugins import Registries, get_registries
from mars_core.tasks import TIMES_KEY, TaskKind, forward, input_keys_of, move_batch, probabilities, target_of

from . import distributed
from .components import MetricFactory, metric_factories
from .distributed import DistInfo, ShardSampler
from .health import PredictionHealth


def check_nonempty(dataset: Dataset[Any], what: str) -> int:
    try:
        n = len(dataset)  # type: ignore[arg-type]
    except TypeError:
        raise MarsError(f"{what} dataset has no length; map-style datasets are required") from None
    if n == 0:
        raise MarsError(f"{what} dataset is empty")
    return n


def eval_loader(dataset: Dataset[Any], batch_size: int, num_workers: int, info: DistInfo,
                device: torch.device) -> DataLoader[Any]:
    n = check_nonempty(dataset, "evaluation")
    # A private generator: otherwise each DataLoader iterator draws its worker seed from the
    # global RNG, and evaluating one more split would shift every later augmentation.
    return DataLoader(dataset, batch_size=batch_size, sampler=ShardSampler(n, info.rank, info.world_size),
                      num_workers=num_workers, pin_memory=device.type == "cuda",
                      generator=torch.Generator().manual_seed(0))


def flatten_output(name: str, out: Any) -> dict[str, float]:
    """``compute()`` may return a tensor or a dict of tensors; log scalars by name."""
    if isinstance(out, Mapping):
        flat: dict[str, float] = {}
        for k, v in out.items():
            flat.update(flatten_output(str(k), v))
        return flat
    t = torch.as_tensor(out).detach().float().cpu()
    if t.numel() == 1:
        return {name: float(t.item())}
    return {f"{name}_{i}": float(v) for i, v in enumerate(t.flatten().tolist())}


def compute_metrics(metrics: list[tuple[str, Metric]]) -> dict[str, float]:
    values: dict[str, float] = {}
    owner: dict[str, str] = {}
    for name, metric in metrics:
        for key, value in flatten_output(name, metric.compute()).items():
            if key in values:
                raise MarsError(f"metrics '{owner[key]}' and '{name}' both produce '{key}'; drop one of them")
            values[key], owner[key] = value, name
    return values


def expected_metric_keys(factories: list[MetricFactory]) -> set[str] | None:
    """The keys the metrics will produce, from freshly built metrics that saw no data.

    Lets a misspelled ``trainer.monitor`` fail before the first epoch instead of after it
    (an epoch on real data may take an hour on CPU). ``None`` when a metric cannot compute
    on empty state: the engine then keeps the check after the first validation. Under
    ``torchrun`` every rank calls this at the same point, so a metric's sync stays collective.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return set(compute_metrics([(f.name, f.build()) for f in factories]))
    except MarsError:
        raise
    except Exception:  # a metric that needs data to know its keys: check later
        return None


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def prepare_batch(batch: Mapping[str, Any], kind: TaskKind, device: torch.device,
                  channels_last: bool) -> dict[str, Any]:
    out = move_batch(batch, device)
    if channels_last:
        for k in input_keys_of(kind, out):
            if out[k].dim() == 4:
                out[k] = out[k].contiguous(memory_format=torch.channels_last)
    return out


@torch.no_grad()
def run_evaluation(model: nn.Module, kind: TaskKind, loader: Iterable[Any], factories: list[MetricFactory],
                   device: torch.device, info: DistInfo, *,
                   loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   amp: bool = False, channels_last: bool = False,
                   on_batch: Callable[[], None] | None = None,
                   health: PredictionHealth | None = None) -> dict[str, float]:
    """Metrics over the whole split (+ ``loss`` when ``loss_fn`` is given), equal on all ranks.

    ``health``, when given, accumulates the prediction statistics that tell a degenerate
    model (:mod:`mars_core.engine.health`); the caller reads it with ``compute()``.
    """
    was_training = model.training
    model.eval()
    metrics = [(f.name, f.build().to(device)) for f in factories]
    loss_sum, count = 0.0, 0
    try:
        for batch in loader:
            b = prepare_batch(batch, kind, device, channels_last)
            with autocast(device, amp):
                logits = forward(kind, model, b)
            target = target_of(kind, b)
            probs = probabilities(kind, logits)
            for _, m in metrics:
                m.update(probs, target)
            if health is not None:
                health.update(probs, target)
            if loss_fn is not None:
                n = int(target.shape[0])
                loss_sum += float(loss_fn(logits.float(), target)) * n
                count += n
            if on_batch is not None:
                on_batch()
        values = compute_metrics(metrics)
        if loss_fn is not None:
            total, n_all = distributed.sum_across([loss_sum, float(count)], device, info)
            values["loss"] = total / max(n_all, 1.0)
    finally:
        model.train(was_training)
    return values


def evaluate_model(model: nn.Module, kind: TaskKind, dataset: Dataset[Any], metric_cfgs: list[Component], *,
                   batch_size: int, device: torch.device | str, registries: Registries | None = None,
                   num_workers: int = 0, contract: InputContract | None = None,
                   health: PredictionHealth | None = None) -> dict[str, float]:
    """Whole-split metrics of ``model`` on ``dataset`` (no loss; the caller has no loss config).

    Shards the dataset when a process group is already initialised, so it may be called on
    every rank of a ``torchrun`` job; otherwise it runs in this process alone. The model is
    moved to ``device`` (in place, as ``nn.Module.to`` does) and left in its training mode.
    """
    dev = torch.device(device) if isinstance(device, str) else device
    regs = registries if registries is not None else get_registries()
    kind = TaskKind(kind)
    info = distributed.current()
    factories = metric_factories(metric_cfgs, regs, contract)  # num_classes from the contract
    loader = eval_loader(dataset, batch_size, num_workers, info, dev)
    model = distributed.unwrap(model).to(dev)
    if health is not None:
        health.to(dev)
    return run_evaluation(model, kind, loader, factories, dev, info, health=health)


@torch.no_grad()
def sample_predictions(model: nn.Module, kind: TaskKind, dataset: Dataset[Any], n: int,
                       device: torch.device) -> dict[str, torch.Tensor] | None:
    """The first ``n`` samples of a split with the model's probabilities, on CPU."""
    n = min(n, len(dataset))  # type: ignore[arg-type]
    if n <= 0:
        return None
    batch = default_collate([dataset[i] for i in range(n)])
    was_training = model.training
    model.eval()
    try:
        b = move_batch(batch, device)
        probs = probabilities(kind, forward(kind, model, b))
    finally:
        model.train(was_training)
    keep = (*input_keys_of(kind, batch), kind.target_key, TIMES_KEY)
    out = {k: batch[k].cpu() for k in keep if k in batch}
    out["probs"] = probs.cpu()
    return out
