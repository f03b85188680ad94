"""The training loop every task shares: ``train(cfg) -> RunSummary``.

Order of one epoch: train (with the data source's augmentation on device) → average
BatchNorm buffers across ranks → validate → step the LR schedule → update best/early
stopping → log → write ``best.pt`` (if improved) then ``last.pt`` → optional test exit.
Epochs are 1-based in the history, the logs (``step=epoch``) and checkpoints.

Test hook: when the environment variable ``MARS_CORE_TEST_EXIT_AFTER_EPOCH=k`` is set, the
process calls ``os._exit(3)`` right after epoch k's checkpoints are on disk, without any
cleanup, to simulate a job killed mid-run (used by the resume test; never set it otherwise).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from mars_core.config import RunConfig
from mars_core.data import Batch
from mars_core.errors import MarsError
from mars_core.plugins import Registries, get_registries
from mars_core.tasks import TaskKind, forward, target_of
from mars_core.tracking.base import NullTracker, RunSummary, Tracker

from . import checkpoint, distributed
from .components import Components, build_components, resolve_device
from .distributed import DistInfo
from .evaluation import (
    autocast,
    check_nonempty,
    eval_loader,
    expected_metric_keys,
    prepare_batch,
    run_evaluation,
    sample_predictions,
)
from .health import PredictionHealth, summarise_health
from .progress import Progress
from .reproducibility import capture_rng, determinism, restore_rng, seed_everything
from .schedules import build_optimizer, build_scheduler, set_step_lr, sync_lr

log = logging.getLogger("mars_core.engine")

TEST_EXIT_ENV = "MARS_CORE_TEST_EXIT_AFTER_EPOCH"


@dataclass
class TrainState:
    """Bookkeeping that a checkpoint must carry for a resumed run to behave identically."""

    epoch: int = 0  # completed epochs
    best_value: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    run_id: str | None = None


def _cuda_only(flag: bool | None, device: torch.device) -> bool:
    return device.type == "cuda" and (flag if flag is not None else True)


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def train(cfg: RunConfig, tracker: Tracker | None = None, *,
          registries: Registries | None = None) -> RunSummary:
    """Train, evaluate the best weights on ``trainer.eval_splits``, and report to ``tracker``.

    ``tracker`` is used only on rank 0 and as given (the caller decides, from
    ``cfg.tracking``, whether to pass one); ``None`` means no tracking.
    """
    regs = registries if registries is not None else get_registries()
    device = resolve_device(cfg.trainer.device)
    info, device = distributed.setup(device)
    try:
        with determinism(cfg.trainer.deterministic, device):
            return _Run(cfg, regs, device, info).execute(tracker)
    finally:
        distributed.teardown(info)


class _Run:
    """One call of :func:`train`; split into methods so each phase reads on its own."""

    def __init__(self, cfg: RunConfig, regs: Registries, device: torch.device, info: DistInfo) -> None:
        self.cfg, self.t, self.device, self.info = cfg, cfg.trainer, device, info
        seed_everything(self.t.seed)
        self.comps: Components = build_components(cfg, regs)
        self.kind: TaskKind = self.comps.kind
        self.splits = list(self.comps.source.splits())
        if "train" not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise MarsError(f"data source '{cfg.data.name}' provides no 'train' split (it has: {have})")
        self.train_ds = self.comps.source.dataset("train")
        check_nonempty(self.train_ds, "train")
        self.val_ds = self.comps.source.dataset("val") if "val" in self.splits else None
        self.augment: Callable[[Batch], Batch] | None = self.comps.source.train_augmentation()

        self.amp = _cuda_only(self.t.amp, device)
        self.channels_last = _cuda_only(self.t.channels_last, device)
        model = self.comps.model.to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.loss_fn = self.comps.loss
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn = self.loss_fn.to(device)
        self.train_model = distributed.wrap_model(model, device, info)
        self.net = distributed.unwrap(self.train_model)
        if self.net is not model:  # trained copy (SyncBatchNorm); park the plain one on CPU
            self.comps.model.cpu()
        self.optimizer = build_optimizer(self.train_model.parameters(), self.t)
        self.scheduler = build_scheduler(self.optimizer, self.t)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.state = TrainState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.ckpt_dir = os.path.abspath(self.t.checkpoint_dir)
        self.config_hash = checkpoint.config_hash(cfg)
        if self.t.resume:
            self._resume(checkpoint.resume_path(self.t.resume, self.t.checkpoint_dir))

    # -- resume ---------------------------------------------------------------------------
    def _resume(self, path: Path) -> None:
        ckpt = checkpoint.load(path)
        checkpoint.check_compatible(ckpt, self.cfg, path)
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        sync_lr(self.scheduler)
        if self.amp and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = TrainState(epoch=int(ckpt["epoch"]), best_value=ckpt["best_value"],
                                best_epoch=ckpt["best_epoch"], bad_epochs=int(ckpt["bad_epochs"]),
                                history=list(ckpt["history"]), run_id=ckpt.get("run_id"))
        best_path = path.parent / checkpoint.BEST
        if self.state.best_epoch is not None and best_path.is_file():
            best = checkpoint.load(best_path)
            if best.get("epoch") == self.state.best_epoch:
                self.best_weights = best["model"]
        if self.best_weights is None and self.state.best_epoch is not None:
            log.warning("best.pt next to %s is missing or stale; the final model may be the last one", path)
        rngs = ckpt.get("rng") or []
        if len(rngs) == self.info.world_size:
            restore_rng(rngs[self.info.rank], self.device)
        else:
            log.warning("checkpoint was written by %d process(es), now %d: random streams reseeded",
                        len(rngs), self.info.world_size)
            seed_everything(self.t.seed + 1000 * self.state.epoch + self.info.rank)
        if ckpt.get("world_size") not in (None, self.info.world_size):
            log.warning("resuming a %s-process run with %d processes: the effective batch size changes",
                        ckpt.get("world_size"), self.info.world_size)
        log.info("resumed from %s after epoch %d", path, self.state.epoch)

    # -- the whole run --------------------------------------------------------------------
    def execute(self, tracker: Tracker | None) -> RunSummary:
        trk: Tracker = tracker if (tracker is not None and self.info.is_main) else NullTracker()
        self._check_monitor_early()  # before a tracking run exists: a typo leaves no failed run behind
        started = False
        try:
            run_id = trk.start(self.cfg, self.comps.task, resume_run_id=self.state.run_id)
            started = True
            self.state.run_id = distributed.gather_objects(run_id, self.info)[0]
            stopped_early = self._fit(trk)
            summary = self._summarise(stopped_early)
            if self.info.is_main:
                summary.model_uri = trk.finish(summary)
            return summary
        except BaseException as exc:
            if started:
                try:
                    trk.fail(f"{type(exc).__name__}: {exc}")
                except Exception:  # the original error matters more than the tracker's
                    log.exception("tracker.fail raised")
            raise

    def _fit(self, trk: Tracker) -> bool:
        """Run the remaining epochs; True when early stopping ended training."""
        patience = self.t.early_stopping.patience
        if patience is not None and self.state.bad_epochs >= patience:
            return True
        val_loader = (eval_loader(self.val_ds, self.t.batch_size, self.t.num_workers, self.info, self.device)
                      if self.val_ds is not None else None)
        with Progress(self.t.progress and self.info.is_main) as bar:
            for epoch in range(self.state.epoch + 1, self.t.epochs + 1):
                start = time.perf_counter()
                entry: dict[str, float] = {"epoch": epoch, "lr": float(self.optimizer.param_groups[0]["lr"])}
                entry["train/loss"] = self._train_epoch(epoch, bar)
                validate = epoch % self.t.val_every == 0 or epoch == self.t.epochs
                if val_loader is not None and validate:
                    bar.phase(f"epoch {epoch}/{self.t.epochs} val", len(val_loader))
                    values = run_evaluation(self.net, self.kind, val_loader, self.comps.metrics, self.device,
                                            self.info, loss_fn=self.loss_fn, amp=self.amp,
                                            channels_last=self.channels_last, on_batch=bar.advance)
                    entry.update({f"val/{k}": v for k, v in values.items()})
                entry["epoch_time_s"] = time.perf_counter() - start
                self.scheduler.step()
                # an epoch without validation neither improves a val/ monitor nor uses up patience
                skipped = val_loader is not None and not validate and self.t.monitor.startswith("val/")
                improved = False if skipped else self._update_monitor(epoch, entry)
                self.state.epoch = epoch
                self.state.history.append(entry)
                trk.log_metrics({k: v for k, v in entry.items() if k != "epoch"}, step=epoch)
                line = ", ".join(f"{k}={v:.4g}" for k, v in entry.items() if k != "epoch")
                log.info("epoch %d/%d: %s", epoch, self.t.epochs, line)
                bar.print(f"epoch {epoch}/{self.t.epochs}: {line}")
                self._save(epoch, improved)
                if os.environ.get(TEST_EXIT_ENV) == str(epoch):
                    os._exit(3)
                if patience is not None and self.state.bad_epochs >= patience:
                    log.info("early stopping after epoch %d: no improvement of %s for %d epoch(s)",
                             epoch, self.t.monitor, patience)
                    return True
        return False

    def _train_loader(self, epoch: int) -> DataLoader[Any]:
        # The order depends only on (seed, epoch), never on RNG history: resume is exact.
        gen = torch.Generator().manual_seed(self.t.seed * 100_003 + epoch * 1_009 + self.info.rank)
        common: dict[str, Any] = dict(batch_size=self.t.batch_size, num_workers=self.t.num_workers,
                                      pin_memory=self.device.type == "cuda", drop_last=False, generator=gen)
        if self.info.enabled:
            sampler: DistributedSampler[Any] = DistributedSampler(
                self.train_ds, num_replicas=self.info.world_size, rank=self.info.rank, shuffle=True,
                seed=self.t.seed, drop_last=False)
            sampler.set_epoch(epoch)
            return DataLoader(self.train_ds, sampler=sampler, **common)
        return DataLoader(self.train_ds, shuffle=True, **common)

    def _train_epoch(self, epoch: int, bar: Progress) -> float:
        loader = self._train_loader(epoch)
        steps = len(loader)
        if self.t.max_steps_per_epoch is not None:
            steps = min(steps, self.t.max_steps_per_epoch)
        bar.phase(f"epoch {epoch}/{self.t.epochs} train", steps)
        self.train_model.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        for step, batch in enumerate(loader):
            if step >= steps:
                break
            b = prepare_batch(batch, self.kind, self.device, self.channels_last)
            if self.augment is not None:
                b = self.augment(b)
            set_step_lr(self.scheduler, self.t.scheduler, self.t.epochs, self.t.lr, epoch - 1, step, steps)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, self.amp):
                logits = forward(self.kind, self.train_model, b)
                target = target_of(self.kind, b)
                loss = self.loss_fn(logits, target)
            self.scaler.scale(loss).backward()
            if self.t.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.train_model.parameters(), self.t.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            n = int(target.shape[0])
            loss_sum += loss.detach().double() * n
            count += n
            bar.advance()
        distributed.average_buffers(self.net, self.info)
        total, n_all = distributed.sum_across([float(loss_sum), float(count)], self.device, self.info)
        mean = total / max(n_all, 1.0)
        if not math.isfinite(mean):
            raise MarsError(
                f"training loss is {mean} in epoch {epoch}; lower trainer.lr, set trainer.grad_clip, "
                "or check the data for NaN / nodata values"
            )
        return mean

    def _monitor_error(self, produced: list[str]) -> MarsError:
        hint = "" if self.val_ds is not None else " (the data source has no 'val' split)"
        return MarsError(
            f"trainer.monitor '{self.t.monitor}' is never produced{hint}; available: {', '.join(produced)}"
        )

    def _check_monitor_early(self) -> None:
        """Refuse an unknown monitor before training, when the metric keys are known up front."""
        if self.val_ds is None:
            produced = ["lr", "train/loss", "epoch_time_s"]
        else:
            keys = expected_metric_keys(self.comps.metrics)
            if keys is None:
                return
            produced = ["lr", "train/loss", *(f"val/{k}" for k in sorted(keys)), "val/loss", "epoch_time_s"]
        if self.t.monitor not in produced:
            raise self._monitor_error(produced)

    def _update_monitor(self, epoch: int, entry: dict[str, float]) -> bool:
        if self.t.monitor not in entry:
            raise self._monitor_error([k for k in entry if k != "epoch"])
        value = float(entry[self.t.monitor])
        if _improved(value, self.state.best_value, self.t.mode, self.t.early_stopping.min_delta):
            self.state.best_value, self.state.best_epoch, self.state.bad_epochs = value, epoch, 0
            self.best_weights = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
            return True
        self.state.bad_epochs += 1
        return False

    def _save(self, epoch: int, improved: bool) -> None:
        rngs = distributed.gather_objects(capture_rng(self.device), self.info)
        if self.info.is_main:
            s = self.state
            ckpt = {
                "format": checkpoint.FORMAT, "epoch": epoch, "model": self.net.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "best_value": s.best_value, "best_epoch": s.best_epoch,
                "bad_epochs": s.bad_epochs, "history": s.history, "rng": rngs,
                "world_size": self.info.world_size, "run_id": s.run_id,
                "config_hash": self.config_hash, "config": self.cfg.to_dict(),
            }
            out = Path(self.ckpt_dir)
            if improved:  # best before last: a kill in between leaves last.pt pointing at an existing best
                checkpoint.save_atomic(ckpt, out / checkpoint.BEST)
            checkpoint.save_atomic(ckpt, out / checkpoint.LAST)
        distributed.barrier(self.info)

    # -- after training -------------------------------------------------------------------
    def _summarise(self, stopped_early: bool) -> RunSummary:
        if self.best_weights is not None:
            self.net.load_state_dict(self.best_weights)
        metrics: dict[str, dict[str, float]] = {}
        health: dict[str, dict[str, Any]] = {}
        skipped = []
        for split in self.t.eval_splits:
            if split not in self.splits:
                skipped.append(split)
                continue
            loader = eval_loader(self.comps.source.dataset(split), self.t.batch_size, self.t.num_workers,
                                 self.info, self.device)
            stats = PredictionHealth(self.kind).to(self.device)
            metrics[split] = run_evaluation(self.net, self.kind, loader, self.comps.metrics, self.device,
                                            self.info, loss_fn=self.loss_fn, amp=self.amp,
                                            channels_last=self.channels_last, health=stats)
            health[split] = stats.compute()
        verdict = summarise_health(health)
        if verdict["degenerate"]:
            log.warning("degenerate model: %s", verdict["degenerate_reason"])
        if skipped:
            log.info("data source has no split(s) %s; not evaluated", ", ".join(skipped))
        samples = None
        n = self.cfg.tracking.sample_predictions
        sample_split = "val" if "val" in self.splits else ("test" if "test" in self.splits else None)
        if self.info.is_main and n > 0 and sample_split is not None:
            samples = sample_predictions(self.net, self.kind, self.comps.source.dataset(sample_split), n,
                                         self.device)
        model = self.comps.model
        if model is not self.net:
            model.load_state_dict(self.net.state_dict())
        model = model.to("cpu", memory_format=torch.contiguous_format).eval()
        return RunSummary(
            cfg=self.cfg, task=self.comps.task, contract=self.comps.contract, model=model,
            history=list(self.state.history), metrics=metrics, monitor=self.t.monitor, mode=self.t.mode,
            best_value=self.state.best_value, best_epoch=self.state.best_epoch, samples=samples,
            preview=getattr(self.comps.source, "preview", None), run_id=self.state.run_id,
            extra={"checkpoint_dir": self.ckpt_dir, "epochs_completed": self.state.epoch,
                   "stopped_early": stopped_early, "world_size": self.info.world_size,
                   "skipped_splits": skipped, "sample_split": sample_split, **verdict},
        )
