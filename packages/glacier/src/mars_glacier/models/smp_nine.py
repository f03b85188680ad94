"""The seven smp architectures of the glacier comparison, built by mars-core's shared wrapper.

``mars_core.models.smp_models.build_smp`` is the one copy of the smp wrapper (landslide
uses it too); here each name gets a factory with explicit keyword parameters so that the
core can check configuration keys against them.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mars_core.models.smp_models import build_smp
from mars_glacier.models.catalog import DEFAULT_ENCODER, DESCRIPTIONS, SMP_ARCHITECTURES


def make_factory(name: str) -> Callable[..., nn.Module]:
    def factory(in_channels: int = 4, encoder_name: str = DEFAULT_ENCODER, encoder_weights: str | None = None,
                encoder_depth: int | None = None, dropout: float = 0.0, activation: str = "relu",
                pooling: str = "max") -> nn.Module:
        return build_smp(SMP_ARCHITECTURES[name], in_channels=in_channels, encoder_name=encoder_name,
                         encoder_weights=encoder_weights, encoder_depth=encoder_depth, dropout=dropout,
                         activation=activation, pooling=pooling)

    factory.__name__ = name
    factory.__doc__ = f"{DESCRIPTIONS[name]}; encoder_weights=None by default (no download)."
    return factory


unetplusplus = make_factory("unetplusplus")
manet = make_factory("manet")
linknet = make_factory("linknet")
fpn = make_factory("fpn")
pspnet = make_factory("pspnet")
pan = make_factory("pan")
deeplabv3plus = make_factory("deeplabv3plus")
