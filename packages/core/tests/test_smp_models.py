"""The shared smp wrapper (mars_core.models.smp_models): optional dependency, knobs, layout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from mars_core.models import smp_models

SRC = Path(smp_models.__file__)


def test_smp_is_imported_only_inside_the_builder() -> None:
    """mars-core must import without segmentation-models-pytorch (it is the extra 'smp')."""
    tree = ast.parse(SRC.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top for a in n.names} | {n.module for n in top if isinstance(n, ast.ImportFrom)}
    assert not any(str(x).startswith("segmentation_models_pytorch") for x in names)


def test_knobs_and_layout() -> None:
    pytest.importorskip("segmentation_models_pytorch")
    plain = smp_models.build_smp("Linknet", in_channels=4, encoder_name="resnet18")
    model = smp_models.build_smp("Linknet", in_channels=4, encoder_name="resnet18", dropout=0.5,
                                 activation="silu", pooling="avg")
    assert model.state_dict().keys() == plain.state_dict().keys()
    assert all(k.startswith("net.") for k in plain.state_dict())
    kinds = {type(m) for m in model.modules()}
    assert nn.SiLU in kinds and nn.ReLU not in kinds and nn.AvgPool2d in kinds and nn.MaxPool2d not in kinds
    x = torch.randn(1, 4, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
    with pytest.raises(ValueError, match="activation must be one of"):
        smp_models.build_smp("Linknet", in_channels=4, encoder_name="resnet18", activation="tanhish")
