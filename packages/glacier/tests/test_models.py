"""The nine architectures: shapes, parameter counts (as in the README), and the grid's knobs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mars_core.registry import lazy
from mars_glacier.models.catalog import FACTORIES, PREFIX

# Parameter counts with the defaults (4 bands, ResNet-18 encoders); the README table quotes them.
PARAMS = {
    "unetplusplus": 15_973_585, "manet": 21_678_609, "linknet": 11_666_913, "fpn": 13_050_369,
    "pspnet": 11_332_961, "pan": 11_370_792, "deeplabv3plus": 12_332_433, "maresunet": 2_184_395,
    "wavemix": 395_393,
}


def build(name: str, **kw):  # type: ignore[no-untyped-def]
    return lazy(FACTORIES[PREFIX + name])(**kw)


def test_nine_architectures_are_registered() -> None:
    assert sorted(n.removeprefix(PREFIX) for n in FACTORIES) == sorted(PARAMS)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_shape_and_parameter_count(name: str) -> None:
    torch.manual_seed(0)
    model = build(name).eval()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]
    with torch.no_grad():
        out = model(torch.randn(1, 4, 128, 128))  # PAN needs >= 128 px
    assert out.shape == (1, 1, 128, 128) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["linknet", "maresunet", "wavemix"])
def test_activation_and_pooling_knobs_change_the_layers(name: str) -> None:
    model = build(name, activation="elu", pooling="avg")
    kinds = {type(m) for m in model.modules()}
    assert nn.ELU in kinds and nn.ReLU not in kinds and nn.GELU not in kinds
    assert nn.AvgPool2d in kinds and nn.MaxPool2d not in kinds
    plain = build(name, activation="relu", pooling="max")
    assert nn.MaxPool2d in {type(m) for m in plain.modules()}


@pytest.mark.parametrize("name", ["fpn", "maresunet", "wavemix"])
def test_dropout_acts_in_training_only(name: str) -> None:
    torch.manual_seed(0)
    model = build(name, dropout=0.5)
    x = torch.randn(1, 4, 64, 64)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a, b)
    model.train()
    with torch.no_grad():
        c, d = model(x), model(x)
    assert not torch.equal(c, d)


def test_dropout_keeps_the_checkpoint_layout() -> None:
    """The shared smp wrapper's dropout is a hook: state dict keys do not depend on it."""
    assert build("fpn", dropout=0.3).state_dict().keys() == build("fpn").state_dict().keys()


def test_bad_knob_values_name_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        build("linknet", activation="swishy")
    with pytest.raises(ValueError, match="pooling must be one of"):
        build("wavemix", pooling="median")
    with pytest.raises(ValueError, match="dropout"):
        build("maresunet", dropout=1.5)
