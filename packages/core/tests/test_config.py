"""Typed configuration: layering, component renames, and errors that name keys."""

from __future__ import annotations

import pytest

from mars_core.config import build_config, load_task_config
from mars_core.errors import MarsError
from mars_core.registry import call_factory

BASE = {
    "task": "toy",
    "data": {"name": "toy-squares", "root": None, "size": 16},
    "model": {"name": "tiny-net", "width": 8},
    "loss": {"name": "bce"},
    "metrics": [{"name": "binary_map"}],
    "trainer": {"epochs": 3},
}


def test_layers_merge_in_order(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("trainer:\n  epochs: 7\n  lr: 0.5\n")
    cfg = build_config(BASE, user, ["trainer.lr=0.25", "trainer.scheduler.name=cosine"], data_root="/d")
    assert cfg.trainer.epochs == 7
    assert cfg.trainer.lr == 0.25
    assert cfg.trainer.scheduler.name == "cosine"
    assert cfg.data.root == "/d"
    assert cfg.data.params == {"size": 16}


def test_renaming_a_component_drops_the_old_parameters():
    cfg = build_config(BASE, None, ["model.name=other-net"])
    assert cfg.model.name == "other-net"
    assert cfg.model.params == {}
    cfg = build_config(BASE, None, ["model.width=4"])
    assert cfg.model.params == {"width": 4}


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(MarsError) as info:
        build_config(BASE, None, ["trainer.epoch=3"])
    assert "trainer.epoch" in str(info.value) and "epochs" in str(info.value)


def test_invalid_value_names_key_and_allowed_values():
    with pytest.raises(MarsError, match=r"trainer\.scheduler\.name.*'step'.*'cosine'"):
        build_config(BASE, None, ["trainer.scheduler.name=linear"])
    with pytest.raises(MarsError, match=r"trainer\.device"):
        build_config(BASE, None, ["trainer.device=gpu"])
    with pytest.raises(MarsError, match=r"trainer\.epochs"):
        build_config(BASE, None, ["trainer.epochs=0"])


def test_bad_override_syntax_and_bad_yaml(tmp_path):
    with pytest.raises(MarsError, match="KEY=VALUE"):
        build_config(BASE, None, ["trainer.epochs"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: [unclosed\n")
    with pytest.raises(MarsError, match="not valid YAML"):
        build_config(BASE, bad)
    with pytest.raises(MarsError, match="not found"):
        load_task_config(tmp_path / "missing.yaml")


def test_factory_parameters_are_checked_by_name():
    def factory(in_channels: int = 3, width: int = 8):
        return (in_channels, width)

    assert call_factory("model", "m", factory, {"width": 2}) == (3, 2)
    with pytest.raises(MarsError, match="'depth'.*allowed: in_channels, width"):
        call_factory("model", "m", factory, {"depth": 2})


def test_flat_params_are_dotted():
    cfg = build_config(BASE)
    flat = cfg.flat()
    assert flat["trainer.epochs"] == 3
    assert flat["model.width"] == 8
    assert flat["metrics.0.name"] == "binary_map"
