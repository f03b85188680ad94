"""One wrapper around segmentation-models-pytorch (smp), shared by the task packages.

smp is an optional dependency of mars-core (``pip install mars-core[smp]``): this module
imports it only inside :func:`build_smp`, so mars-core itself never needs it; a task
package that builds smp models depends on ``mars-core[smp]``.

The wrapper adds three knobs that the published comparisons of these architectures search
over, applied the same way to every smp architecture so that a grid is comparable:

* ``dropout``: spatial dropout (``Dropout2d``) on the decoder output, just before the
  segmentation head (training only). Applied by a forward pre-hook, so the state dict keys
  are those of the plain smp model whatever the value.
* ``activation``: every ``nn.ReLU`` of the encoder and decoder is replaced by this
  activation (``relu``, ``leaky_relu``, ``elu``, ``gelu``, ``silu``); the head's output
  stays a logit.
* ``pooling``: every ``nn.MaxPool2d`` (the ResNet/VGG stem and stage pools) becomes an
  average pool of the same window (``avg``) or stays (``max``).

Weights are never downloaded unless asked: ``encoder_weights=None`` by default.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn
from torch.nn import functional as F

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.01, inplace=True),
    "elu": lambda: nn.ELU(inplace=True),
    "gelu": nn.GELU,
    "silu": lambda: nn.SiLU(inplace=True),
}
POOLINGS = ("max", "avg")


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module by name (ValueError naming the allowed ones otherwise)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def check_pooling(name: str) -> str:
    if name not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {name!r}")
    return name


def check_dropout(p: float) -> float:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {p!r}")
    return float(p)


def replace_activations(module: nn.Module, name: str) -> int:
    """Replace every ``nn.ReLU`` under ``module`` in place; returns how many were replaced."""
    if name == "relu":
        return 0
    n = 0
    for child_name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, child_name, activation_layer(name))
            n += 1
        else:
            n += replace_activations(child, name)
    return n


def replace_pooling(module: nn.Module, pooling: str) -> int:
    """Replace every ``nn.MaxPool2d`` under ``module`` by an average pool of the same window."""
    if check_pooling(pooling) == "max":
        return 0
    n = 0
    for child_name, child in module.named_children():
        if isinstance(child, nn.MaxPool2d):
            setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                     ceil_mode=child.ceil_mode))
            n += 1
        else:
            n += replace_pooling(child, pooling)
    return n


class SmpLogits(nn.Module):
    """An smp model whose ``forward(image)`` returns logits; optional dropout before its head.

    The smp model is the attribute ``net`` (checkpoints of earlier versions have the keys
    ``net.*``, so this layout must not change)."""

    def __init__(self, net: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = net
        self.dropout = check_dropout(dropout)
        head = getattr(net, "segmentation_head", None)
        if self.dropout > 0 and head is not None:
            head.register_forward_pre_hook(self._drop)

    def _drop(self, _module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (F.dropout2d(args[0], self.dropout, training=self.training), *args[1:])

    def forward(self, image):  # type: ignore[no-untyped-def]
        return self.net(image)


def build_smp(architecture: str, *, in_channels: int, encoder_name: str, classes: int = 1,
              encoder_weights: str | None = None, encoder_depth: int | None = None, dropout: float = 0.0,
              activation: str = "relu", pooling: str = "max", **kwargs: Any) -> SmpLogits:
    """``smp.<architecture>`` (e.g. ``"UnetPlusPlus"``) wrapped as :class:`SmpLogits`.

    ``kwargs`` go to the smp constructor unchanged (e.g. ``decoder_channels``)."""
    import segmentation_models_pytorch as smp

    if not hasattr(smp, architecture):
        raise ValueError(f"segmentation-models-pytorch has no architecture {architecture!r}")
    activation_layer(activation)  # validate before building
    check_pooling(pooling)
    args: dict[str, Any] = {"encoder_name": encoder_name, "encoder_weights": encoder_weights,
                            "in_channels": in_channels, "classes": classes, **kwargs}
    if encoder_depth is not None:
        args["encoder_depth"] = encoder_depth
    net = getattr(smp, architecture)(**args)
    replace_activations(net, activation)
    replace_pooling(net, pooling)
    return SmpLogits(net, dropout)
