"""The shared engine on the SYNTHETIC toy task: learning, determinism, schedules,
early stopping, monitor errors, checkpoint writing and tracker calls."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import toy_plugin
from torch import nn

from mars_core.config import Component, load_task_config
from mars_core.engine import build_components, checkpoint, evaluate_model, resolve_device, train
from mars_core.errors import MarsError
from mars_core.tasks import TaskKind


def toy_cfg(tmp_path: Path, *overrides: str):
    return load_task_config(toy_plugin.TASK_YAML, overrides=[
        f"trainer.checkpoint_dir={tmp_path / 'ckpt'}", "trainer.device=cpu", *overrides])


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Background(nn.Module):
    """The trivial predictor: every pixel is background."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.full_like(image[:, :1], -10.0)


def test_toy_task_learns_beyond_trivial_predictor(toy, tmp_path):
    summary = train(toy_cfg(tmp_path, "trainer.epochs=3"))
    comps = build_components(summary.cfg, None)
    val = comps.source.dataset("val")
    trivial = evaluate_model(Background(), TaskKind.SEGMENTATION, val, [Component(name="binary_map")],
                             batch_size=4, device="cpu")
    assert trivial["iou"] == 0.0
    assert summary.metrics["val"]["miou"] > trivial["miou"] + 0.2
    assert summary.metrics["val"]["f1"] > 0.5

    # The summary holds the best epoch's weights, on CPU, in eval mode, and re-evaluating
    # them reproduces the reported whole-split metrics.
    assert not summary.model.training
    assert all(p.device.type == "cpu" for p in summary.model.parameters())
    again = evaluate_model(summary.model, TaskKind.SEGMENTATION, val, [Component(name="binary_map")],
                           batch_size=3, device="cpu")
    for k, v in again.items():
        assert v == pytest.approx(summary.metrics["val"][k], abs=1e-6)
    best = max(summary.history, key=lambda h: h["val/miou"])
    assert summary.best_epoch == best["epoch"] and summary.best_value == pytest.approx(best["val/miou"])

    assert [h["epoch"] for h in summary.history] == [1, 2, 3]
    assert {"train/loss", "val/loss", "val/miou", "val/f1", "lr", "epoch_time_s"} <= set(summary.history[0])
    assert set(summary.metrics) == {"val", "test"} and "loss" in summary.metrics["test"]
    assert summary.samples is not None
    assert set(summary.samples) == {"image", "mask", "probs"}
    assert summary.samples["probs"].shape == (8, 1, 16, 16)
    assert summary.samples["probs"].min() >= 0 and summary.samples["probs"].max() <= 1


def test_same_seed_same_weights_other_seed_differs(toy, tmp_path):
    fast = ("trainer.epochs=2", "data.n_train=16", "data.n_val=4", "data.n_test=0")
    a = weights(train(toy_cfg(tmp_path / "a", *fast)).model)
    b = weights(train(toy_cfg(tmp_path / "b", *fast)).model)
    c = weights(train(toy_cfg(tmp_path / "c", *fast, "trainer.seed=1")).model)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert any(not torch.allclose(a[k].float(), c[k].float()) for k in a)


def test_early_stopping_stops_when_monitor_cannot_improve(toy, tmp_path):
    summary = train(toy_cfg(
        tmp_path, "trainer.epochs=10", "trainer.lr=1e-9", "trainer.monitor=val/loss", "trainer.mode=min",
        "trainer.early_stopping.patience=1", "trainer.early_stopping.min_delta=0.1",
        "data.n_train=8", "data.n_val=4", "data.n_test=0"))
    assert len(summary.history) == 2
    assert summary.best_epoch == 1
    assert summary.extra["stopped_early"] is True


def test_val_every_validates_every_nth_epoch_and_the_last(toy, tmp_path):
    summary = train(toy_cfg(tmp_path, "trainer.epochs=5", "trainer.val_every=2", "trainer.monitor=val/loss",
                            "trainer.mode=min", "data.n_train=8", "data.n_val=4", "data.n_test=0"))
    validated = [row["epoch"] for row in summary.history if "val/loss" in row]
    assert validated == [2, 4, 5] and len(summary.history) == 5
    assert summary.best_epoch in validated  # a val/ monitor moves only where it was measured
    # patience counts validations: one bad validation stops, however many epochs lie between
    stopped = train(toy_cfg(
        tmp_path / "es", "trainer.epochs=10", "trainer.val_every=3", "trainer.lr=1e-9", "trainer.monitor=val/loss",
        "trainer.early_stopping.patience=1", "trainer.early_stopping.min_delta=0.1",
        "data.n_train=8", "data.n_val=4", "data.n_test=0"))
    assert [row["epoch"] for row in stopped.history if "val/loss" in row] == [3, 6]
    assert len(stopped.history) == 6 and stopped.best_epoch == 3 and stopped.extra["stopped_early"] is True
    with pytest.raises(MarsError, match="trainer.val_every"):
        toy_cfg(tmp_path, "trainer.val_every=0")


LR = 0.01


@pytest.mark.parametrize(("sched", "expected"), [
    (["trainer.scheduler.name=none"], [LR] * 5),
    (["trainer.scheduler.name=step", "trainer.scheduler.step_size=2", "trainer.scheduler.gamma=0.5"],
     [LR, LR, LR / 2, LR / 2, LR / 4]),
    (["trainer.scheduler.name=exponential", "trainer.scheduler.gamma=0.5"],
     [LR, LR / 2, LR / 4, LR / 8, LR / 16]),
    # cos(pi*e/5) for e = 0..4: 1, 0.809017, 0.309017, -0.309017, -0.809017
    (["trainer.scheduler.name=cosine"],
     [LR, LR * 0.9045085, LR * 0.6545085, LR * 0.3454915, LR * 0.0954915]),
    # warmup 2: 1/3, 2/3 of LR; then cosine over 3 epochs from LR to min_lr=LR/10
    (["trainer.scheduler.name=cosine", "trainer.scheduler.warmup_epochs=2", f"trainer.scheduler.min_lr={LR / 10}"],
     [LR / 3, 2 * LR / 3, LR, LR / 10 + 0.9 * LR * 0.75, LR / 10 + 0.9 * LR * 0.25]),
])
def test_lr_schedules(toy, tmp_path, sched, expected):
    summary = train(toy_cfg(
        tmp_path, "trainer.epochs=5", f"trainer.lr={LR}", "trainer.monitor=train/loss", "trainer.mode=min",
        "trainer.eval_splits=[]", "data.n_train=4", "data.n_val=0", "data.n_test=0", "data.size=8",
        "tracking.sample_predictions=0", *sched))
    assert [h["lr"] for h in summary.history] == pytest.approx(expected, rel=1e-6)
    assert summary.metrics == {} and summary.samples is None


def test_onecycle_curve_endpoints_and_peak():
    from mars_core.config import SchedulerConfig
    from mars_core.engine.schedules import onecycle_factor

    sched = SchedulerConfig(name="onecycle", pct_start=0.25, div_factor=10, final_div_factor=100)
    assert onecycle_factor(0.0, sched) == pytest.approx(0.1)
    assert onecycle_factor(0.25, sched) == pytest.approx(1.0)
    assert onecycle_factor(1.0, sched) == pytest.approx(0.1 / 100)
    ups = [onecycle_factor(t / 100, sched) for t in range(0, 26)]
    downs = [onecycle_factor(t / 100, sched) for t in range(25, 101)]
    assert ups == sorted(ups) and downs == sorted(downs, reverse=True)


def test_onecycle_is_stepped_per_batch(toy, tmp_path, monkeypatch):
    """4 samples, batch 2 -> 2 steps per epoch; the rate changes inside each epoch."""
    from mars_core.config import SchedulerConfig
    from mars_core.engine.schedules import onecycle_factor

    seen: list[float] = []
    original = torch.optim.Adam.step

    def recording_step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    summary = train(toy_cfg(
        tmp_path, "trainer.epochs=3", f"trainer.lr={LR}", "trainer.batch_size=2", "trainer.monitor=train/loss",
        "trainer.mode=min", "trainer.eval_splits=[]", "data.n_train=4", "data.n_val=0", "data.n_test=0",
        "data.size=8", "tracking.sample_predictions=0", "trainer.scheduler.name=onecycle",
        "trainer.scheduler.pct_start=0.5"))
    sched = SchedulerConfig(name="onecycle", pct_start=0.5)
    # logged at the start of epoch e: progress (e-1)/3
    expected = [LR * onecycle_factor(e / 3, sched) for e in range(3)]
    assert [h["lr"] for h in summary.history] == pytest.approx(expected, rel=1e-6)
    per_step = [LR * onecycle_factor((e + k / 2) / 3, sched) for e in range(3) for k in range(2)]
    assert seen == pytest.approx(per_step, rel=1e-6)


def test_onecycle_refuses_a_second_warmup(toy, tmp_path):
    with pytest.raises(MarsError, match="onecycle warms up by itself"):
        toy_cfg(tmp_path, "trainer.scheduler.name=onecycle", "trainer.scheduler.warmup_epochs=2")


def test_unknown_monitor_names_the_available_keys(toy, tmp_path):
    with pytest.raises(MarsError) as err:
        train(toy_cfg(tmp_path, "trainer.epochs=1", "trainer.monitor=val/nope", "data.n_train=8",
                      "data.n_val=4"))
    msg = str(err.value)
    assert "val/nope" in msg and "val/miou" in msg and "train/loss" in msg and "val/loss" in msg
    assert "\n" not in msg


def test_checkpoints_are_complete_and_written_atomically(toy, tmp_path, monkeypatch):
    train(toy_cfg(tmp_path, "trainer.epochs=2", "data.n_train=8", "data.n_val=4", "data.n_test=0"))
    ckpt_dir = tmp_path / "ckpt"
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best.pt", "last.pt"]
    last = torch.load(ckpt_dir / "last.pt", weights_only=True)
    assert last["epoch"] == 2 and len(last["history"]) == 2
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "config_hash", "best_value", "best_epoch",
            "bad_epochs", "run_id"} <= set(last)
    before = (ckpt_dir / "last.pt").read_bytes()

    def broken_save(obj, f, *a, **kw):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", broken_save)
    with pytest.raises(OSError):
        checkpoint.save_atomic({"x": 1}, ckpt_dir / "last.pt")
    assert (ckpt_dir / "last.pt").read_bytes() == before
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["best.pt", "last.pt"]


class Recorder:
    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls: list[tuple] = []
        self.interrupt_at = interrupt_at

    def start(self, cfg, task, resume_run_id=None):
        self.calls.append(("start", resume_run_id))
        return "run-x"

    def log_metrics(self, metrics, step):
        self.calls.append(("log_metrics", step, sorted(metrics)))
        if step == self.interrupt_at:
            raise KeyboardInterrupt

    def log_artifact(self, path, artifact_path=None):
        self.calls.append(("log_artifact", str(path)))

    def finish(self, summary):
        self.calls.append(("finish", summary.run_id, summary.best_epoch))
        return "runs:/run-x/model"

    def fail(self, reason):
        self.calls.append(("fail", reason))


def test_tracker_calls_and_failure(toy, tmp_path):
    fast = ("trainer.epochs=2", "data.n_train=8", "data.n_val=4", "data.n_test=0")
    rec = Recorder()
    summary = train(toy_cfg(tmp_path / "ok", *fast), rec)
    assert rec.calls[0] == ("start", None)
    logged = [c for c in rec.calls if c[0] == "log_metrics"]
    assert [c[1] for c in logged] == [1, 2]
    assert {"train/loss", "val/loss", "val/miou", "lr", "epoch_time_s"} <= set(logged[0][2])
    assert rec.calls[-1][0] == "finish" and rec.calls[-1][1] == "run-x"
    assert summary.run_id == "run-x" and summary.model_uri == "runs:/run-x/model"
    assert not any(c[0] == "fail" for c in rec.calls)

    rec = Recorder(interrupt_at=1)
    with pytest.raises(KeyboardInterrupt):
        train(toy_cfg(tmp_path / "ko", *fast), rec)
    assert rec.calls[-1][0] == "fail" and "KeyboardInterrupt" in rec.calls[-1][1]


def test_user_errors_are_mars_errors(toy, tmp_path):
    with pytest.raises(MarsError, match="no 'train' split"):
        train(toy_cfg(tmp_path, "data.n_train=0"))
    with pytest.raises(MarsError, match="has no parameter 'bogus'"):
        train(toy_cfg(tmp_path, "model.bogus=1"))
    with pytest.raises(MarsError, match="unknown metric 'nope'"):
        evaluate_model(toy_plugin.TinyNet(), TaskKind.SEGMENTATION, toy_plugin.SquaresDataset(2, 8, 2, 0),
                       [Component(name="nope")], batch_size=2, device="cpu")
    with pytest.raises(MarsError, match="empty"):
        evaluate_model(toy_plugin.TinyNet(), TaskKind.SEGMENTATION, toy_plugin.SquaresDataset(0, 8, 2, 0),
                       [Component(name="binary_map")], batch_size=2, device="cpu")


def test_resolve_device_and_in_channels(toy, tmp_path):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(MarsError, match="CUDA is not available"):
            resolve_device("cuda:0")
    comps = build_components(toy_cfg(tmp_path, "data.channels=3"), None)
    assert comps.model.net[0].in_channels == 3 and len(comps.contract.bands) == 3
    assert math.isclose(comps.metrics[0].build().threshold, 0.5)


def test_unknown_monitor_is_refused_before_the_first_epoch(toy, tmp_path, monkeypatch):
    # The check must not need a training epoch: make training itself impossible.
    from mars_core.engine import loop

    def no_training(*args, **kwargs):
        raise AssertionError("an epoch started before the monitor was checked")

    monkeypatch.setattr(loop._Run, "_train_epoch", no_training)
    with pytest.raises(MarsError, match="trainer.monitor 'val/f1score' is never produced") as err:
        train(toy_cfg(tmp_path, "trainer.epochs=1", "trainer.monitor=val/f1score", "data.n_train=8",
                      "data.n_val=4"))
    assert "val/f1" in str(err.value)
    assert not (tmp_path / "ckpt" / "last.pt").exists()


def test_metric_that_needs_data_for_its_keys_falls_back_to_the_check_after_epoch_one():
    from mars_core.engine.components import MetricFactory
    from mars_core.engine.evaluation import expected_metric_keys

    class NeedsData:
        def compute(self):
            raise RuntimeError("no data yet")

    assert expected_metric_keys([]) == set()
    factory = MetricFactory(name="needs-data", build=NeedsData)
    assert expected_metric_keys([factory]) is None


@pytest.mark.parametrize("n_val", [4, 0])
def test_keys_announced_before_training_are_the_keys_an_epoch_logs(toy, tmp_path, n_val):
    # The early monitor check lists the per-epoch keys itself; if the epoch gains a key the
    # list lacks, a valid monitor would be refused. Compare the list with a real epoch's log.
    sizes = ("data.n_train=8", f"data.n_val={n_val}", "data.n_test=0")
    with pytest.raises(MarsError, match="is never produced") as err:
        train(toy_cfg(tmp_path / "early", "trainer.epochs=1", "trainer.monitor=nope", *sizes))
    announced = set(str(err.value).split("available: ", 1)[1].split(", "))
    history = train(toy_cfg(tmp_path / "real", "trainer.epochs=1", "trainer.monitor=train/loss",
                            "trainer.mode=min", *sizes)).history
    assert announced == set(history[0]) - {"epoch"}
    assert ("val/miou" in announced) == (n_val > 0)


@pytest.mark.parametrize("progress", [True, False])
def test_epoch_summaries_reach_a_log_file_without_a_terminal(toy, tmp_path, capsys, progress):
    # Under pytest stderr is not a terminal, as in a batch job's log: no bars, but one line
    # per epoch unless progress output is switched off.
    train(toy_cfg(tmp_path, "trainer.epochs=2", f"trainer.progress={str(progress).lower()}",
                  "data.n_train=8", "data.n_val=4", "data.n_test=0"))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("epoch ")]
    if progress:
        assert [ln.split(":")[0] for ln in lines] == ["epoch 1/2", "epoch 2/2"]
        assert all("train/loss=" in ln and "val/miou=" in ln for ln in lines)
    else:
        assert lines == []
