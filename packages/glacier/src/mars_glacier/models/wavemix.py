"""WaveMix: token mixing by a 2-D discrete wavelet transform (written here).

After the description of Jeevan & Sethi, "WaveMix: A Resource-efficient Neural Network
for Image Analysis" (2022; its segmentation variant WaveMix-Lite): a convolutional stem
brings the tile to half resolution, then ``depth`` WaveMix blocks each

  x -> 1x1 conv (C -> C/4) -> one-level Haar DWT (4 sub-bands, C/4 each, at half size)
    -> MLP (1x1 conv C -> mult*C, activation, dropout, 1x1 conv -> C)
    -> transposed conv (x2 up) -> BatchNorm -> + x

so every block mixes a 2x2 neighbourhood of tokens through a fixed, parameter-free
wavelet (the wavelet's multi-resolution view replaces self-attention). A transposed conv
and a 3x3 conv bring the map back to full resolution before a 1x1 head.

Knobs: ``dropout`` = dropout inside every block's MLP (as in WaveMix) and before the head;
``activation`` = the MLP's and the stem's activation (GELU in the paper); ``pooling`` = how
the stem halves the resolution (max or avg pooling after a stride-1 conv).
"""

from __future__ import annotations

import torch
from torch import nn

from mars_glacier.models.blocks import activation_layer, check_dropout, down


def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """One-level orthonormal 2-D Haar transform: [B,C,H,W] -> [B,4C,H/2,W/2] (LL, LH, HL, HH)."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat([(a + b + c + d), (a - b + c - d), (a + b - c - d), (a - b - c + d)], dim=1) / 2


class WaveMixBlock(nn.Module):
    def __init__(self, channels: int, mult: int, dropout: float, activation: str) -> None:
        super().__init__()
        if channels % 4:
            raise ValueError(f"WaveMix channels must be a multiple of 4, got {channels}")
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, channels * mult, 1), activation_layer(activation),
                                 nn.Dropout(dropout), nn.Conv2d(channels * mult, channels, 1))
        self.up = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(self.up(self.mlp(haar_dwt(self.reduce(x)))))


class WaveMix(nn.Module):
    def __init__(self, in_channels: int = 4, channels: int = 64, depth: int = 4, mult: int = 2,
                 dropout: float = 0.0, activation: str = "gelu", pooling: str = "max") -> None:
        super().__init__()
        p = check_dropout(dropout)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels // 2, 3, padding=1), nn.BatchNorm2d(channels // 2),
            activation_layer(activation), down(pooling),
            nn.Conv2d(channels // 2, channels, 3, padding=1), nn.BatchNorm2d(channels), activation_layer(activation),
        )
        self.blocks = nn.Sequential(*(WaveMixBlock(channels, mult, p, activation) for _ in range(depth)))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(channels, channels // 2, 4, stride=2, padding=1), nn.BatchNorm2d(channels // 2),
            activation_layer(activation),
            nn.Conv2d(channels // 2, channels // 2, 3, padding=1), activation_layer(activation),
        )
        self.drop = nn.Dropout2d(p)
        self.head = nn.Conv2d(channels // 2, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        ph, pw = h % 4, w % 4
        if ph or pw:  # the stem halves and each block halves again: pad to a multiple of 4
            image = nn.functional.pad(image, (0, (4 - pw) % 4, 0, (4 - ph) % 4), mode="reflect")
        out = self.head(self.drop(self.up(self.blocks(self.stem(image)))))
        return out[..., :h, :w]


def wavemix(in_channels: int = 4, channels: int = 64, depth: int = 4, mult: int = 2, dropout: float = 0.0,
            activation: str = "gelu", pooling: str = "max") -> nn.Module:
    """WaveMix (see the module docstring): ``depth`` blocks of ``channels`` at half resolution."""
    return WaveMix(in_channels, channels, depth, mult, dropout, activation, pooling)
