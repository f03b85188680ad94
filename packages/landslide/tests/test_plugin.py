"""Registration through the installed entry point, the default config, a tiny engine run."""

from __future__ import annotations

from pathlib import Path

import pytest

from mars_core import plugins
from mars_core.config import load_task_config

EXPECTED_MODELS = {"marslsnet", "unet", "unetplusplus", "deeplabv3plus", "pspnet", "segformer", "resunet",
                   "ensemble"}


def test_registered_names() -> None:
    reg = plugins.get_registries()
    assert "mmls" in reg.datasources
    assert set(reg.models.names()) >= EXPECTED_MODELS
    for name in EXPECTED_MODELS:
        assert reg.models.entry(name).owner.distribution == "mars-landslide"


def test_default_config_is_valid() -> None:
    from mars_landslide.plugin import TASK_YAML

    cfg = load_task_config(TASK_YAML)
    assert cfg.task == "landslide" and cfg.data.name == "mmls"
    assert cfg.trainer.batch_size == 16 and cfg.trainer.lr == pytest.approx(1e-3)
    assert cfg.trainer.optimizer == "adam" and cfg.trainer.weight_decay > 0
    # No held-out split picks the epoch (recipe and epochs come from spatial CV; --data pools
    # train + val): the weights kept are those of the lowest training loss.
    assert cfg.trainer.monitor == "train/loss" and cfg.trainer.mode == "min"
    assert cfg.data.params["train_on"] == "auto"
    assert cfg.trainer.scheduler.name != "none"
    assert cfg.loss.name == "bce"
    assert [m.name for m in cfg.metrics] == ["binary_map"]


def test_engine_one_step_on_sample(tmp_path: Path) -> None:
    engine = pytest.importorskip("mars_core.engine")
    from mars_landslide.plugin import TASK_YAML

    cfg = load_task_config(TASK_YAML, overrides=[
        "trainer.epochs=1", "trainer.max_steps_per_epoch=1", "trainer.batch_size=4",
        "tracking.enabled=false", "trainer.progress=false", "trainer.device=cpu",
        f"trainer.checkpoint_dir={tmp_path / 'ckpt'}", "model.name=marslsnet", "model.size=S",
        "model.kernel=3", "data.channels=[rgb, dem]",
    ])
    summary = engine.train(cfg)
    assert summary.contract.bands == ["red", "green", "blue", "dem"]
    assert 0.0 <= summary.metrics["val"]["miou"] <= 1.0
    assert set(summary.metrics["val"]) >= {"miou", "iou", "f1", "precision", "recall"}
