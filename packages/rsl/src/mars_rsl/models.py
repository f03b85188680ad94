"""``siamese-unet-sa``: a Siamese U-Net with spatial attention over T >= 2 dates.

The RSL paper's network, as far as its description goes: one U-Net encoder shared by every
date (Siamese: the same weights see each date, so a change of the input, not of the
encoder, makes a difference); at each level the dates' features are fused and gated by a
spatial attention map before they become the decoder's skip; a U-Net decoder; one logit
channel (binary mask, as mars-core expects).

Choices where the paper leaves room (our assumptions, stated):

* fusion at each level: the newest date's features, the absolute difference with the date
  before it, and the mean absolute difference over the earlier consecutive pairs (zeros
  when T = 2), concatenated and mixed by a 1x1 convolution. This works for any T and keeps
  the darkening between the last two dates explicit;
* spatial attention: CBAM's spatial branch (Woo et al. 2018): channel-wise mean and max,
  a 7x7 convolution, a sigmoid, multiplied onto the fused features (a map over pixels
  that lets thin lineae stand out from broad illumination change);
* widths 16-32-64-128 with a 256-wide bottleneck, conv-BN-ReLU x2 blocks, bilinear
  upsampling. ``base`` scales the widths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True), nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SpatialAttention(nn.Module):
    """CBAM spatial attention: ``x * sigmoid(conv7x7([mean_c(x), max_c(x)]))``."""

    def __init__(self, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class SiameseUNetSA(nn.Module):
    def __init__(self, in_channels: int = 1, base: int = 16, attention: bool = True) -> None:
        super().__init__()
        w = [base, base * 2, base * 4, base * 8, base * 16]
        self.enc = nn.ModuleList([_block(in_channels, w[0])] + [_block(w[i - 1], w[i]) for i in range(1, 5)])
        self.fuse = nn.ModuleList([nn.Sequential(nn.Conv2d(3 * c, c, 1, bias=False), nn.BatchNorm2d(c),
                                                 nn.ReLU(inplace=True)) for c in w])
        self.att = nn.ModuleList([SpatialAttention() if attention else nn.Identity() for _ in w[:4]])
        self.dec = nn.ModuleList([_block(w[i + 1] + w[i], w[i]) for i in range(4)])
        self.head = nn.Conv2d(w[0], 1, 1)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, enc in enumerate(self.enc):
            x = enc(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        if len(images) < 2:
            raise ValueError(f"siamese-unet-sa takes T >= 2 dates, got {len(images)}")
        h, w = images[0].shape[-2:]
        if h % 16 or w % 16:
            raise ValueError(f"input size must be a multiple of 16, got {h}x{w}")
        t = len(images)
        # one pass of the shared encoder over all dates (batched: [T*B, C, H, W])
        feats = self._encode(torch.cat(images, 0))
        fused = []
        for lvl, f in enumerate(feats):
            per = f.chunk(t, 0)
            last, diff = per[-1], (per[-1] - per[-2]).abs()
            hist = (torch.stack([(per[k + 1] - per[k]).abs() for k in range(t - 2)]).mean(0) if t > 2
                    else torch.zeros_like(last))
            fused.append(self.fuse[lvl](torch.cat([last, diff, hist], 1)))
        x = fused[4]
        for lvl in range(3, -1, -1):
            x = F.interpolate(x, size=fused[lvl].shape[-2:], mode="bilinear", align_corners=False)
            x = self.dec[lvl](torch.cat([x, self.att[lvl](fused[lvl])], 1))
        return self.head(x)


def siamese_unet_sa(in_channels: int = 1, base: int = 16, attention: bool = True) -> SiameseUNetSA:
    """Factory registered as ``siamese-unet-sa`` (``attention: false`` is the ablation)."""
    return SiameseUNetSA(in_channels, base, attention)
