"""Fully convolutional baselines of Daudt et al. (2018): FC-EF, FC-Siam-conc, FC-Siam-diff.

One U-Net-like design, three ways of using the two dates:

* ``ef`` (early fusion): the dates are concatenated on channels and go through one encoder;
* ``conc``: a shared (Siamese) encoder per date; the decoder's skips are the concatenation
  of both dates' features at each level;
* ``diff``: like ``conc`` but the skips are ``|f_T1 - f_T2|``.

Four levels of widths 16/32/64/128, conv-BN-ReLU-dropout blocks, max pooling, transposed
convolutions in the decoder, and a two-class head returned as log-odds (see package docs).
H and W must be multiples of 16.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mars_icefrag.radiometry import with_match


def _block(c_in: int, c_out: int, n: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(n):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True), nn.Dropout2d(dropout)]
    return nn.Sequential(*layers)


class FCSiam(nn.Module):
    WIDTHS = (16, 32, 64, 128)
    DEPTHS = (2, 2, 3, 3)

    def __init__(self, mode: Literal["ef", "conc", "diff"] = "diff", in_channels: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if mode not in ("ef", "conc", "diff"):
            raise ValueError(f"mode must be ef, conc or diff, got {mode!r}")
        self.mode = mode
        c = in_channels * (2 if mode == "ef" else 1)
        self.enc = nn.ModuleList()
        for w, n in zip(self.WIDTHS, self.DEPTHS, strict=False):
            self.enc.append(_block(c, w, n, dropout))
            c = w
        skip_mult = 2 if mode == "conc" else 1
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        c = self.WIDTHS[-1]
        for w, n in zip(reversed(self.WIDTHS), reversed(self.DEPTHS), strict=False):
            self.up.append(nn.ConvTranspose2d(c, c, 2, stride=2))
            out = w // 2 if w > self.WIDTHS[0] else w
            self.dec.append(_block(c + skip_mult * w, out, n, dropout))
            c = out
        self.head = nn.Conv2d(c, 2, 1)

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        return skips, x

    def two_class_logits(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        if image1.shape[-1] % 16 or image1.shape[-2] % 16:
            raise ValueError(f"height and width must be multiples of 16, got {tuple(image1.shape[-2:])}")
        if self.mode == "ef":
            skips, x = self._encode(torch.cat([image1, image2], dim=1))
        else:
            s1, x = self._encode(image1)
            s2, _ = self._encode(image2)
            if self.mode == "conc":
                skips = [torch.cat([a, b], dim=1) for a, b in zip(s1, s2, strict=False)]
            else:
                skips = [torch.abs(a - b) for a, b in zip(s1, s2, strict=False)]
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=False):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        z = self.two_class_logits(image1, image2)
        return z[:, 1:2] - z[:, 0:1]


def fc_ef(in_channels: int = 1, dropout: float = 0.2, radiometric_match: str = "none") -> nn.Module:
    """``radiometric_match``: T2 matched to T1 first (``mars_icefrag.radiometry``)."""
    return with_match(FCSiam("ef", in_channels, dropout), radiometric_match)


def fc_siam_conc(in_channels: int = 1, dropout: float = 0.2, radiometric_match: str = "none") -> nn.Module:
    """``radiometric_match``: T2 matched to T1 first (``mars_icefrag.radiometry``)."""
    return with_match(FCSiam("conc", in_channels, dropout), radiometric_match)


def fc_siam_diff(in_channels: int = 1, dropout: float = 0.2, radiometric_match: str = "none") -> nn.Module:
    """``radiometric_match``: T2 matched to T1 first (``mars_icefrag.radiometry``)."""
    return with_match(FCSiam("diff", in_channels, dropout), radiometric_match)
