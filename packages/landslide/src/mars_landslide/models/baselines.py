"""Baselines through segmentation-models-pytorch, registered as models of the landslide task.

All take ``in_channels`` (7 by default; smp patches the first convolution, see its
``patch_first_conv``), return one logit channel, and default to ``encoder_weights=None``:
nothing is ever downloaded unless a user asks for ImageNet weights explicitly (which then
only make sense for the first three, colour, channels anyway).

Default encoders are chosen for CPU-affordable training on 128x128 patches while keeping the
architecture each name stands for:

- ``unet``: classic U-Net shape with a plain (non-residual) VGG-style encoder, ``vgg11_bn``.
- ``resunet``: U-Net with a residual (ResNet-34) encoder, i.e. ResU-Net.
- ``unetplusplus``, ``deeplabv3plus``, ``pspnet``: ResNet-18 encoder.
- ``segformer``: SegFormer with its own Mix Transformer encoder ``mit_b0``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mars_core.errors import MarsError
from mars_core.models.smp_models import build_smp
from mars_landslide.models.catalog import ARCHITECTURES, DEFAULT_ENCODERS, DESCRIPTIONS

_ARCH = ARCHITECTURES


def set_drop_path(model: nn.Module, rate: float, encoder_name: str) -> None:
    """Stochastic depth (DropPath) rising linearly to ``rate`` over the encoder's blocks.

    Only transformer encoders with residual blocks have it (smp's MiT ``mit_b*``, whose
    default rate is already 0.1); on any other encoder a ``drop_path`` is refused rather
    than silently ignored."""
    encoder = getattr(getattr(model, "net", None), "encoder", None)
    reset = getattr(encoder, "reset_drop_path", None)
    if reset is None:
        raise MarsError(f"model.drop_path: encoder '{encoder_name}' has no stochastic depth; "
                        "it is available with the MiT encoders of segformer (mit_b0 ... mit_b5)")
    reset(rate)


def make_factory(name: str) -> Callable[..., nn.Module]:
    """A factory with explicit keyword parameters, so the core can check config keys.

    The smp model itself is built by mars-core's shared wrapper (one copy for every task
    package, ``mars_core.models.smp_models``); the module layout (``net.*``) is unchanged."""

    def factory(
        in_channels: int = 7,
        encoder_name: str | None = None,
        encoder_weights: str | None = None,
        encoder_depth: int | None = None,
        dropout: float = 0.0,
        drop_path: float | None = None,
    ) -> nn.Module:
        if not 0.0 <= float(dropout) < 1.0:
            raise MarsError(f"model.dropout must be in [0, 1), got {dropout!r}")
        if drop_path is not None and not 0.0 <= float(drop_path) < 1.0:
            raise MarsError(f"model.drop_path must be in [0, 1) or null (the encoder's default), got {drop_path!r}")
        model = build_smp(_ARCH[name], in_channels=in_channels, encoder_name=encoder_name or DEFAULT_ENCODERS[name],
                          encoder_weights=encoder_weights, encoder_depth=encoder_depth, dropout=dropout)
        if drop_path is not None:
            set_drop_path(model, float(drop_path), encoder_name or DEFAULT_ENCODERS[name])
        return model

    factory.__name__ = name
    factory.__doc__ = f"{DESCRIPTIONS[name]}; encoder_weights=None by default (no download)."
    return factory


BASELINES: dict[str, Callable[..., nn.Module]] = {n: make_factory(n) for n in _ARCH}

# One module-level name per baseline: the plugin registers them as "module:name", imported lazily.
unet = BASELINES["unet"]
resunet = BASELINES["resunet"]
unetplusplus = BASELINES["unetplusplus"]
deeplabv3plus = BASELINES["deeplabv3plus"]
pspnet = BASELINES["pspnet"]
segformer = BASELINES["segformer"]
