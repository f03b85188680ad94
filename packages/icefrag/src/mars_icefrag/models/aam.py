"""The augmented attention module (AAM) of Su et al.

For decoder features ``f`` (the upsampled T1 stream) and the absolute difference ``d`` of
the two dates' encoder features at the same scale::

    V_A    = H2( H1_f(G(f)) + H1_g(G(d)) )        # channel attention, softmax over channels
    output = f + H1_d(d) * V_A                      # broadcast over H, W

``G`` is global average pooling, ``H1`` a 1x1 convolution + batch norm + ReLU and ``H2`` a
1x1 convolution followed by a softmax over channels. The paper writes one symbol ``H1`` for
the three places; they act on tensors of different roles (a pooled T1 vector, a pooled
difference vector, a difference map), so each gets its own weights here. The softmax makes
V_A a distribution over channels: it decides *which* difference channels are added to the
T1 stream, while ``H1_d`` decides how strongly.

Gain of the softmax (``gain``). A softmax over C channels averages 1/C: with C = 1024 at
the deepest fusion, each difference channel enters the T1 stream with a weight near 1/C
when training starts, where the no-attention ablation adds it with weight 1. The paper
does not say how V_A is scaled. ``gain="one"`` (default) is the literal formula;
``gain="channels"`` multiplies V_A by C, which keeps the softmax's relative weighting of
channels and gives the term unit mean gain. We expected the scaled form to train faster,
but over two training seeds in our SYNTHETIC benchmark (BENCHMARK.md) the literal form did
better on average (F1 0.21 and 0.65 against 0.36 and 0.22 on 20 held-out scenes), so the
paper's formula stays the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GAINS = ("channels", "one")


class ConvBNReLU(nn.Module):
    """``H1``: 1x1 (or kxk) conv + batch norm + ReLU.

    Applied to globally pooled vectors, batch norm sees a single value per channel when a
    batch holds one sample; PyTorch refuses to compute batch statistics then. In that case
    (and only then) the running statistics are used, exactly as in evaluation, so that a
    last batch of size one does not crash training.
    """

    def __init__(self, c_in: int, c_out: int, kernel: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        single = y.shape[0] * y.shape[2] * y.shape[3] == 1
        if self.training and single:
            y = F.batch_norm(y, self.bn.running_mean, self.bn.running_var, self.bn.weight, self.bn.bias,
                             training=False, eps=self.bn.eps)
        else:
            y = self.bn(y)
        return F.relu(y)


class AugmentedAttention(nn.Module):
    """Fuse the T1 decoder stream ``f`` [B,Cf,H,W] with difference features ``d`` [B,Cd,H,W]."""

    def __init__(self, c_f: int, c_d: int, gain: str = "one") -> None:
        super().__init__()
        if gain not in GAINS:
            raise ValueError(f"gain must be one of {sorted(GAINS)}, got {gain!r}")
        self.scale = float(c_f) if gain == "channels" else 1.0
        self.h1_f = ConvBNReLU(c_f, c_f)  # H1 on G(f_T1)
        self.h1_g = ConvBNReLU(c_d, c_f)  # H1 on G(d)
        self.h1_d = ConvBNReLU(c_d, c_f)  # H1 on d (spatial)
        self.h2 = nn.Conv2d(c_f, c_f, 1)  # H2 (softmax applied in forward)

    def attention(self, f: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """V_A [B,Cf,1,1]: a softmax over channels, times the gain (C or 1)."""
        g_f = F.adaptive_avg_pool2d(f, 1)
        g_d = F.adaptive_avg_pool2d(d, 1)
        return torch.softmax(self.h2(self.h1_f(g_f) + self.h1_g(g_d)), dim=1) * self.scale

    def forward(self, f: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return f + self.h1_d(d) * self.attention(f, d)


class PlainFusion(nn.Module):
    """Ablation without attention: ``f + H1_d(d)`` (differences still reach the decoder)."""

    def __init__(self, c_f: int, c_d: int) -> None:
        super().__init__()
        self.h1_d = ConvBNReLU(c_d, c_f)

    def forward(self, f: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return f + self.h1_d(d)
