"""The shipped configurations: icefrag-paper pinned to the published setup (issue 13, item 6)."""

from __future__ import annotations

from mars_core import plugins
from mars_core.config import load_task_config
from mars_icefrag.configs import PAPER, SYNTHETIC


def _load(path):  # type: ignore[no-untyped-def]
    plugins.reset()
    spec = plugins.get_registries().task("icefrag")
    return load_task_config(spec.default_config, user_file=path)


def test_icefrag_paper_is_the_published_setup() -> None:
    cfg = _load(PAPER)
    assert cfg.model.name == "siamese-resnet50-aam"
    assert cfg.model.params.get("attention") is True and cfg.model.params.get("pretrained") is False
    assert cfg.data.params["tile"] == 256
    assert cfg.loss.name == "icefrag-loss"
    t = cfg.trainer
    assert t.optimizer == "adam" and t.lr == 1e-4
    assert t.scheduler.name == "exponential" and t.scheduler.gamma == 0.95
    assert t.epochs == 50 and t.max_steps_per_epoch is None
    assert t.monitor == "val/loss" and t.mode == "min"
    event = next(m for m in cfg.metrics if m.name == "event")
    assert event.params.get("min_size", 1) == 1  # every component counts in the event metric


def test_synthetic_recipe_loads_and_names_registered_components() -> None:
    cfg = _load(SYNTHETIC)
    regs = plugins.get_registries()
    assert cfg.model.name in regs.models and cfg.loss.name in regs.losses
    assert cfg.data.params["positive_fraction"] == 0.5
    assert cfg.trainer.monitor == "val/loss"
