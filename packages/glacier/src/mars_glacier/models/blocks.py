"""Small building blocks shared by MAResU-Net and WaveMix (activation, pooling by name)."""

from __future__ import annotations

from torch import nn

from mars_core.models.smp_models import activation_layer, check_dropout, check_pooling

__all__ = ["ResBlock", "activation_layer", "check_dropout", "check_pooling", "down"]


def down(pooling: str) -> nn.Module:
    """2x downsampling by max or average pooling (the grid's ``pooling`` knob)."""
    return nn.MaxPool2d(2) if check_pooling(pooling) == "max" else nn.AvgPool2d(2)


class ResBlock(nn.Module):
    """Two 3x3 conv + BN with an identity (or 1x1) shortcut: the residual unit of ResU-Net."""

    def __init__(self, c_in: int, c_out: int, activation: str) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), activation_layer(activation),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.act = activation_layer(activation)

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.act(self.body(x) + self.skip(x))
