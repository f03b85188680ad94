"""BIT, the bitemporal image transformer of Chen, Qi and Shi (IEEE TGRS 2021), as a baseline.

Why it is here: BIT is the transformer baseline most change-detection papers compare with.
It models context with a handful of *semantic tokens* per date instead of attention over
all pixels, so it is cheap enough for CPU training, unlike pixel-wise transformers.

Layout (the paper's "BIT, ResNet18 S4" configuration, 3.55 M parameters):

* Backbone, shared by both dates: ResNet-18 stem and stages 1-3. Stage 3 is dilated instead
  of strided, so features come out at stride 8 (256 channels). They are upsampled x2
  (bilinear) and a 3x3 convolution reduces them to ``dim = 32`` channels at stride 4.
* Semantic tokenizer: a 1x1 convolution gives ``tokens = 4`` spatial attention maps, each
  a softmax over the pixels; each token is the attention-weighted sum of the features.
* Transformer encoder (1 layer, with a learnt positional embedding) over the 2 x 4 tokens of
  both dates together: this is where the dates exchange context.
* Transformer decoder (8 layers, shared by the dates): every pixel feature is a query over
  its own date's refined tokens, and the result is added back to the pixel (residual).
* Change head: ``|X1 - X2|``, upsampled x4 to the input size, two 3x3 convolutions to two
  classes, returned as log-odds like the other models here.

Attention uses 8 heads of width 64 (an inner width of 512 for 32-channel features), pre-norm
LayerNorm and a GELU MLP of width 64, as in the authors' release. Inputs need H and W
divisible by 8. No weights are downloaded unless ``pretrained=True``.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from mars_icefrag.radiometry import with_match


class _Attention(nn.Module):
    """Multi-head attention whose inner width (heads x head_dim) may exceed the model width."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.q = nn.Linear(dim, inner, bias=False)
        self.kv = nn.Linear(dim, 2 * inner, bias=False)
        self.out = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self._split(self.q(x))
        k, v = (self._split(t) for t in self.kv(context).chunk(2, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class _Block(nn.Module):
    """Pre-norm transformer layer; ``cross=True`` attends from ``x`` to a separate context."""

    def __init__(self, dim: int, heads: int, head_dim: int, mlp_dim: int, cross: bool) -> None:
        super().__init__()
        self.norm_x = nn.LayerNorm(dim)
        self.norm_c = nn.LayerNorm(dim) if cross else None  # tokens get their own norm as keys
        self.attn = _Attention(dim, heads, head_dim)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        xn = self.norm_x(x)
        cn = self.norm_c(context) if self.norm_c is not None and context is not None else xn
        x = x + self.attn(xn, cn)
        return x + self.mlp(self.norm_mlp(x))


class BIT(nn.Module):
    def __init__(self, in_channels: int = 1, dim: int = 32, tokens: int = 4, enc_depth: int = 1,
                 dec_depth: int = 8, heads: int = 8, head_dim: int = 64, mlp_dim: int = 64,
                 pretrained: bool = False) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("tokens", tokens), ("enc_depth", enc_depth), ("dec_depth", dec_depth),
                            ("heads", heads), ("head_dim", head_dim), ("mlp_dim", mlp_dim)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.backbone = timm.create_model("resnet18", pretrained=pretrained, features_only=True, out_indices=(3,),
                                          output_stride=8, in_chans=in_channels)
        c_feat = self.backbone.feature_info.channels()[-1]
        self.reduce = nn.Conv2d(c_feat, dim, 3, padding=1)
        self.token_attention = nn.Conv2d(dim, tokens, 1)
        self.pos = nn.Parameter(torch.randn(1, 2 * tokens, dim) * 0.02)
        self.encoder = nn.ModuleList(_Block(dim, heads, head_dim, mlp_dim, cross=False) for _ in range(enc_depth))
        self.decoder = nn.ModuleList(_Block(dim, heads, head_dim, mlp_dim, cross=True) for _ in range(dec_depth))
        self.head = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim),
                                  nn.ReLU(inplace=True), nn.Conv2d(dim, 2, 3, padding=1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B,dim,H/4,W/4] pixel features of one date."""
        f = self.backbone(x)[-1]
        f = F.interpolate(f, scale_factor=2, mode="bilinear", align_corners=False)
        return self.reduce(f)

    def tokenize(self, f: torch.Tensor) -> torch.Tensor:
        """[B,L,dim] semantic tokens: one softmax-over-pixels attention map per token."""
        a = self.token_attention(f).flatten(2).softmax(dim=-1)  # [B,L,HW]
        return torch.einsum("blp,bcp->blc", a, f.flatten(2))

    def _decode(self, f: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        b, c, h, w = f.shape
        x = f.flatten(2).transpose(1, 2)  # pixels as queries [B,HW,dim]
        for layer in self.decoder:
            x = layer(x, tokens)
        return x.transpose(1, 2).reshape(b, c, h, w)

    def two_class_logits(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        if image1.shape != image2.shape:
            raise ValueError(f"image1 {tuple(image1.shape)} and image2 {tuple(image2.shape)} differ")
        if image1.shape[-1] % 8 or image1.shape[-2] % 8:
            raise ValueError(f"height and width must be multiples of 8, got {tuple(image1.shape[-2:])}")
        f1, f2 = self.features(image1), self.features(image2)
        t = torch.cat([self.tokenize(f1), self.tokenize(f2)], dim=1) + self.pos
        for layer in self.encoder:
            t = layer(t)
        t1, t2 = t.chunk(2, dim=1)
        d = torch.abs(self._decode(f1, t1) - self._decode(f2, t2))
        d = F.interpolate(d, size=image1.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(d)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        z = self.two_class_logits(image1, image2)
        return z[:, 1:2] - z[:, 0:1]


def bit(in_channels: int = 1, dim: int = 32, tokens: int = 4, enc_depth: int = 1, dec_depth: int = 8,
        heads: int = 8, head_dim: int = 64, mlp_dim: int = 64, pretrained: bool = False,
        radiometric_match: str = "none") -> nn.Module:
    """BIT (ResNet-18 S4), Chen et al. 2021: the paper's defaults (``radiometric_match``: see radiometry.py)."""
    return with_match(BIT(in_channels, dim, tokens, enc_depth, dec_depth, heads, head_dim, mlp_dim, pretrained),
                      radiometric_match)
