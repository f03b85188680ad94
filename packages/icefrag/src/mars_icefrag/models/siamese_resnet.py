"""The proposed network of Su et al.: a Siamese ResNet-50 with augmented attention.

* Encoder: one timm ``resnet50`` whose weights are shared by both dates. T1 (pre-detach)
  runs through all five stages (stem, layer1..layer4 at strides 2..32); T2 (post-detach)
  only through the first four, because the deepest difference is never used: the decoder
  starts from T1's deepest features.
* At stages 1-4 the absolute difference ``|f_T1 - f_T2|`` is taken.
* Decoder: five transposed convolutions (x2 each) upsample the T1 stream from stride 32 to
  full resolution. After each of the first four, an augmented attention module
  (:mod:`mars_icefrag.models.aam`) fuses the stream with the difference of the same scale.
  There is no difference at full resolution, so the fifth step has no fusion.
* Head: two convolutions to two classes. The softmax of the paper is replaced by the
  equivalent log-odds ``z_change - z_nochange`` (one logit channel, as mars-core wants).

Inputs must have H and W divisible by 32. No weights are downloaded unless asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import timm
import torch
from torch import nn

from mars_core.errors import MarsError
from mars_icefrag.models.aam import AugmentedAttention, ConvBNReLU, PlainFusion
from mars_icefrag.radiometry import with_match

ENCODER_CHANNELS = (64, 256, 512, 1024, 2048)


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


def load_local_weights(encoder: nn.Module, path: str | Path) -> None:
    """Load a local ResNet-50 state dict (timm/torchvision key names) into ``encoder``.

    A 3-channel first convolution is folded to the encoder's channel count by summing
    over the RGB weights (the same idea as segmentation-models-pytorch's first-conv patch),
    so ImageNet weights can initialise a single-band HiRISE encoder.
    """
    p = Path(path)
    if not p.is_file():
        raise MarsError(f"pretrained weights file not found: {p}")
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    w = state.get("conv1.weight")
    target = encoder.conv1.weight
    if w is not None and w.shape[1] != target.shape[1]:
        w = w.sum(dim=1, keepdim=True) * (1.0 if target.shape[1] == 1 else 1.0 / target.shape[1])
        state["conv1.weight"] = w.repeat(1, target.shape[1], 1, 1)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if unexpected or [m for m in missing if not m.startswith("fc.")]:
        raise MarsError(f"weights in {p} do not fit a ResNet-50: missing {missing[:5]}, unexpected {unexpected[:5]}")


class SiameseResNet50(nn.Module):
    """Siamese ResNet-50 change detector (``attention=False`` gives the ablation)."""

    def __init__(self, in_channels: int = 1, attention: bool = True, pretrained: bool | str = False,
                 head_channels: int = 32, attention_gain: str = "one") -> None:
        super().__init__()
        use_timm_weights = pretrained is True
        self.encoder = timm.create_model("resnet50", pretrained=use_timm_weights, num_classes=0,
                                         in_chans=in_channels, global_pool="")
        if isinstance(pretrained, str) and pretrained:
            load_local_weights(self.encoder, pretrained)
        self.attention = attention
        dec = (1024, 512, 256, 64, head_channels)  # decoder widths at strides 16, 8, 4, 2, 1
        ins = (2048, *dec[:-1])
        self.ups = nn.ModuleList(_up(i, o) for i, o in zip(ins, dec, strict=False))
        # Differences at strides 16, 8, 4, 2 come from encoder stages 4, 3, 2, 1.
        pairs = list(zip(dec[:4], ENCODER_CHANNELS[3::-1], strict=False))
        if attention:
            self.fuse = nn.ModuleList(AugmentedAttention(c, c_d, gain=attention_gain) for c, c_d in pairs)
        else:
            self.fuse = nn.ModuleList(PlainFusion(c, c_d) for c, c_d in pairs)
        self.head = nn.Sequential(ConvBNReLU(head_channels, head_channels, kernel=3),
                                  nn.Conv2d(head_channels, 2, 1))

    def _stages(self, x: torch.Tensor, n: int) -> list[torch.Tensor]:
        e = self.encoder
        feats = [e.act1(e.bn1(e.conv1(x)))]
        layers = [lambda t: e.layer1(e.maxpool(t)), e.layer2, e.layer3, e.layer4]
        for layer in layers[: n - 1]:
            feats.append(layer(feats[-1]))
        return feats

    def two_class_logits(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        """[B,2,H,W] logits (no-change, change) as in the paper, before the softmax."""
        if image1.shape != image2.shape:
            raise ValueError(f"image1 {tuple(image1.shape)} and image2 {tuple(image2.shape)} differ")
        if image1.shape[-1] % 32 or image1.shape[-2] % 32:
            raise ValueError(f"height and width must be multiples of 32, got {tuple(image1.shape[-2:])}")
        f1 = self._stages(image1, 5)
        f2 = self._stages(image2, 4)
        diffs = [torch.abs(a - b) for a, b in zip(f1[:4], f2, strict=False)]
        x = f1[4]
        for i, up in enumerate(self.ups):
            x = up(x)
            if i < 4:
                x = self.fuse[i](x, diffs[3 - i])
        return self.head(x)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        z = self.two_class_logits(image1, image2)
        return z[:, 1:2] - z[:, 0:1]


def siamese_resnet50_aam(in_channels: int = 1, pretrained: bool | str = False, attention: bool = True,
                         head_channels: int = 32, attention_gain: Literal["one", "channels"] = "one",
                         radiometric_match: str = "none") -> nn.Module:
    """The proposed model (Su et al.); ``attention_gain="channels"`` scales the softmax by C (see aam.py);
    ``radiometric_match`` matches T2 to T1 first (``mars_icefrag.radiometry``)."""
    return with_match(SiameseResNet50(in_channels, attention, pretrained, head_channels, attention_gain),
                      radiometric_match)


def siamese_resnet50(in_channels: int = 1, pretrained: bool | str = False,
                     head_channels: int = 32, radiometric_match: str = "none") -> nn.Module:
    """Ablation: the proposed model with the attention replaced by plain addition of H1(d)."""
    return with_match(SiameseResNet50(in_channels, False, pretrained, head_channels), radiometric_match)
