"""Data parallelism under ``torchrun``: process group, samplers and reductions.

Batch size in the configuration is *per process*: with N processes the effective batch is
N x ``trainer.batch_size`` (scale the learning rate yourself if you want the same curve).

Evaluation shards a split with :class:`ShardSampler`, which does not pad: every sample is
seen exactly once across ranks, so whole-split metrics are exact (``DistributedSampler``
would repeat samples to even out shards and bias the metrics). Evaluation runs the
unwrapped module, so uneven shards cannot deadlock a DDP collective; losses are reduced as
(sum, count) pairs and torchmetrics reduces its states itself.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from mars_core.errors import MarsError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # True when the engine created the process group and must destroy it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise MarsError(f"WORLD_SIZE must be an integer, got {os.environ['WORLD_SIZE']!r}") from None


def setup(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun prepared; return the info and this rank's device."""
    if launched_world_size() <= 1:
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return DistInfo(dist.get_rank(), dist.get_world_size(), dist.get_rank()), device
        return DistInfo(), device
    if not dist.is_available():
        raise MarsError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        owns = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns), device


def teardown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def wrap_model(model: nn.Module, device: torch.device, info: DistInfo) -> nn.Module:
    """DDP for training; SyncBatchNorm only on CUDA (gloo has no efficient path for it)."""
    if not info.enabled:
        return model
    if device.type == "cuda":
        # convert_sync_batchnorm swaps children in place: copy so the caller's plain model
        # (returned in the RunSummary) keeps ordinary BatchNorm layers.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index])
    return nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def sum_across(values: list[float], device: torch.device, info: DistInfo) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def average_buffers(model: nn.Module, info: DistInfo) -> None:
    """Average floating buffers (BatchNorm running stats) so every rank holds the same model.

    Without SyncBatchNorm each rank updates its running statistics on its own batches; DDP
    re-broadcasts rank 0's at the next forward, but after an epoch's last step they differ
    and the checkpoint/best weights would depend on the rank that saved them.
    """
    if not info.enabled:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(info.world_size)
        else:
            dist.broadcast(buf, src=0)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


class ShardSampler(Sampler[int]):
    """Rank ``r`` of ``n`` takes indices ``r, r+n, r+2n, ...``; no padding, no shuffling."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


def current() -> DistInfo:
    """The process group the caller set up, if any (for :func:`evaluate_model`)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()
