"""Helpers shared by the tracking tests (no tests here).

Summaries are built by hand from a TinyNet trained for a few steps on the SYNTHETIC toy
squares, so the tracking tests do not depend on the engine; ``best_value`` is chosen by
the test to drive the champion alias.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mars_core.config import RunConfig, load_task_config
from mars_core.data import InputContract
from mars_core.plugins import get_registries
from mars_core.tracking import load_model, model_io
from mars_core.tracking.base import RunSummary
from mars_core.tracking.mlflow_tracker import MlflowTracker
from mars_core.tracking.store import tracking_uri


def initialised_store(folder: Path) -> Path:
    """An empty, fully migrated ``mlflow.db``: creating one runs dozens of schema
    migrations (seconds on a busy 2-core machine), so tests copy this template instead."""
    from mlflow import MlflowClient

    db = folder / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def toy_config(*overrides: str) -> RunConfig:
    import toy_plugin

    return load_task_config(toy_plugin.TASK_YAML, overrides=["tracking.enabled=true", *overrides])


def toy_contract() -> InputContract:
    import toy_plugin

    return toy_plugin.ToySource().input_contract()


def train_tiny(cfg: RunConfig, seed: int, steps: int = 4) -> torch.nn.Module:
    """A few Adam steps: different seeds give measurably different weights."""
    import toy_plugin

    torch.manual_seed(seed)
    model = model_io.build_model(cfg, toy_contract())
    ds = toy_plugin.ToySource().dataset("train")
    batch = [ds[i] for i in range(8)]
    x = torch.stack([b["image"] for b in batch])
    y = torch.stack([b["mask"] for b in batch])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
    return model.eval()


def val_batch(n: int = 4) -> dict[str, torch.Tensor]:
    import toy_plugin

    ds = toy_plugin.ToySource().dataset("val")
    items = [ds[i] for i in range(n)]
    return {k: torch.stack([it[k] for it in items]) for k in ("image", "mask")}


def make_summary(cfg: RunConfig, model: torch.nn.Module, best_value: float | None,
                 epochs: int = 3) -> RunSummary:
    batch = val_batch()
    with torch.no_grad():
        probs = torch.sigmoid(model(batch["image"]))
    history = [
        {"epoch": e, "lr": 0.01, "train/loss": 1.0 / e, "val/loss": 1.2 / e, "val/miou": 0.1 * e}
        for e in range(1, epochs + 1)
    ]
    return RunSummary(
        cfg=cfg, task=get_registries().task("toy"), contract=toy_contract(), model=model,
        history=history, metrics={"val": {"miou": 0.33, "loss": 0.4}, "test": {"miou": 0.31}},
        monitor=cfg.trainer.monitor, mode=cfg.trainer.mode, best_value=best_value, best_epoch=epochs,
        samples={**batch, "probs": probs},
    )


def tracked_run(cfg: RunConfig, best_value: float | None, seed: int) -> RunSummary:
    """What the engine does with a tracker, with a hand-made summary."""
    model = train_tiny(cfg, seed)
    summary = make_summary(cfg, model, best_value)
    tracker = MlflowTracker(timeout_s=5)
    run_id = tracker.start(cfg, summary.task)
    assert run_id
    for row in summary.history:
        tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
    summary.model_uri = tracker.finish(summary)
    summary.run_id = run_id
    return summary


def db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated template per test session, shared by every module that needs it."""
    from mars_core.tracking.store import quiet_mlflow

    folder = tmp_path_factory.getbasetemp() / "mlflow-db-template"
    db = folder / "mlflow.db"
    if not db.is_file():
        quiet_mlflow()
        folder.mkdir(exist_ok=True)
        tmp = initialised_store(Path(tmp_path_factory.mktemp("db-build")))
        shutil.move(str(tmp), db)  # complete files only: a half-built template is never seen
    return db


def seed_store(template: Path, folder: Path) -> None:
    shutil.copy(template, folder / "mlflow.db")


def in_memory_predictions(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x))).numpy()


def check_logged(summary, store) -> None:
    """Params, per-epoch metric history, final metrics, artifacts and a registered version."""
    client = store.client
    run = client.get_run(summary.run_id)
    params = run.data.params
    assert params["task"] == "toy"
    assert params["trainer.monitor"] == "val/miou"
    assert params["model.name"] == "tiny-net"
    assert run.data.tags["mars.task"] == "toy"
    assert "mars.version.mars-core" in run.data.tags and "mars.version.torch" in run.data.tags
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(summary.run_id, "val/miou")
    # epochs 1..3 from log_metrics, then the final evaluation one step after the last epoch
    assert [(m.step, round(m.value, 6)) for m in sorted(history, key=lambda m: m.step)] == [
        (1, 0.1), (2, 0.2), (3, 0.3), (4, 0.33)]
    assert [m.step for m in client.get_metric_history(summary.run_id, "train/loss")] == [1, 2, 3]
    assert run.data.metrics["test/miou"] == pytest.approx(0.31)
    top = {a.path for a in client.list_artifacts(summary.run_id)}
    assert "config.yaml" in top
    plots = {a.path for a in client.list_artifacts(summary.run_id, "plots")}
    assert plots == {"plots/training_curves.png", "plots/predictions.png"}
    for p in plots:
        local = Path(client.download_artifacts(summary.run_id, p, str(Path.cwd() / "dl")))
        assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and local.stat().st_size > 2000
    assert summary.model_uri and summary.model_uri.startswith("models:/mars-toy/")
    version = summary.extra["model_version"]
    mv = client.get_model_version("mars-toy", version)
    assert mv.run_id == summary.run_id
    assert mv.tags["monitor"] == "val/miou" and mv.tags["mode"] == "max"
    assert float(mv.tags["monitor_value"]) == pytest.approx(summary.best_value)


def check_model_files(uri: str) -> None:
    """Weights + config + contract; the pyfunc pickle is the tiny wrapper, not the module."""
    import mlflow.artifacts

    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(Path.cwd() / "m"),
                                                    tracking_uri=tracking_uri()))
    arts = root / "artifacts"
    assert {"weights.pt", "config.yaml", "contract.json"} <= {p.name for p in arts.iterdir()}
    state = torch.load(arts / "weights.pt", weights_only=True)
    assert "net.0.weight" in state
    contract = json.loads((arts / "contract.json").read_text())
    assert contract["bands"] == ["b0", "b1"] and "mars-core" in contract["package_versions"]
    assert "torch" in contract["package_versions"]
    assert (root / "python_model.pkl").stat().st_size < 5000


def check_predictions(uri: str, model: torch.nn.Module) -> None:
    import mlflow.pyfunc

    x = val_batch()["image"].numpy()
    expected = in_memory_predictions(model, x)
    loaded = load_model(uri)
    assert loaded.cfg.task == "toy" and loaded.contract.bands == ["b0", "b1"]
    assert not loaded.model.training
    np.testing.assert_allclose(loaded.predict(x), expected, rtol=1e-5, atol=1e-6)
    pyfunc = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(np.asarray(pyfunc.predict(x)), expected, rtol=1e-5, atol=1e-6)
