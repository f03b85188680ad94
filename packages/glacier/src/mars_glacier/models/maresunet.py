"""MAResU-Net: a residual U-Net with linear attention at every stage (written here).

After the description of Li et al., "Multistage Attention ResU-Net for Semantic
Segmentation of Fine-Resolution Remote Sensing Images" (IEEE GRSL 2021): a ResU-Net whose
skip connections pass through an attention module at every stage (multi-stage
attention), with the attention's softmax replaced by a first-order Taylor expansion so
that its cost is linear in the number of pixels (their "linear attention mechanism"):

  out_i = (sum_j v_j + q_i^T sum_j k_j v_j^T) / (N + q_i^T sum_j k_j),  q, k L2-normalised

together with a channel attention (softmax over the C x C Gram matrix of the feature). The
encoder here is a small residual one (widths ``base * (1, 2, 4, 8, 16)``), written from
scratch (no smp), to keep it trainable on CPU; the paper uses a ResNet-34 backbone.

Knobs: ``dropout`` = Dropout2d before the head; ``activation`` = every activation of the
residual units; ``pooling`` = the 2x downsampling between encoder stages (max or avg).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mars_glacier.models.blocks import ResBlock, activation_layer, check_dropout, down


class LinearAttention(nn.Module):
    """Spatial attention of linear cost (Taylor-expanded softmax, normalised q and k)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        c_qk = max(channels // reduction, 4)
        self.q = nn.Conv2d(channels, c_qk, 1)
        self.k = nn.Conv2d(channels, c_qk, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        n = h * w
        q = F.normalize(self.q(x).flatten(2), dim=1)  # [B, c', N]
        k = F.normalize(self.k(x).flatten(2), dim=1)  # [B, c', N]
        v = self.v(x).flatten(2)  # [B, C, N]
        kv = torch.einsum("bkn,bcn->bkc", k, v)  # sum_j k_j v_j^T  [B, c', C]
        num = v.sum(-1, keepdim=True) + torch.einsum("bkn,bkc->bcn", q, kv)  # [B, C, N]
        den = n + torch.einsum("bkn,bk->bn", q, k.sum(-1)).unsqueeze(1)  # [B, 1, N]
        return x + self.gamma * (num / den).view(b, c, h, w)


class ChannelAttention(nn.Module):
    """Channel attention: softmax over the Gram matrix of the channels."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        f = x.flatten(2)
        energy = torch.bmm(f, f.transpose(1, 2))
        attn = torch.softmax(energy.amax(-1, keepdim=True) - energy, dim=-1)
        return x + self.gamma * torch.bmm(attn, f).view(b, c, h, w)


class StageAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.spatial = LinearAttention(channels)
        self.channel = ChannelAttention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(x) + self.channel(x) - x


class MAResUNet(nn.Module):
    def __init__(self, in_channels: int = 4, base: int = 16, dropout: float = 0.0, activation: str = "relu",
                 pooling: str = "max") -> None:
        super().__init__()
        widths = [base * m for m in (1, 2, 4, 8, 16)]
        self.stem = ResBlock(in_channels, widths[0], activation)
        self.pools = nn.ModuleList(down(pooling) for _ in widths[1:])
        self.enc = nn.ModuleList(ResBlock(a, b, activation) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.attn = nn.ModuleList(StageAttention(c) for c in widths)
        self.dec = nn.ModuleList(ResBlock(widths[i + 1] + widths[i], widths[i], activation)
                                 for i in range(len(widths) - 1))
        self.drop = nn.Dropout2d(check_dropout(dropout))
        self.head = nn.Conv2d(widths[0], 1, 1)
        activation_layer(activation)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = [self.stem(image)]
        for pool, block in zip(self.pools, self.enc, strict=True):
            skips.append(block(pool(skips[-1])))
        x = self.attn[-1](skips[-1])
        for i in range(len(self.dec) - 1, -1, -1):
            skip = self.attn[i](skips[i])
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.dec[i](torch.cat([x, skip], 1))
        return self.head(self.drop(x))


def maresunet(in_channels: int = 4, base: int = 16, dropout: float = 0.0, activation: str = "relu",
              pooling: str = "max") -> nn.Module:
    """MAResU-Net (see the module docstring); ``base`` = width of the first stage."""
    return MAResUNet(in_channels, base, dropout, activation, pooling)
