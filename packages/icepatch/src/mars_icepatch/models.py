"""Models: the icepatch paper's reduced Xception, and a timm ResNet-18 baseline.

``xception-small`` follows the paper's description: depthwise-separable convolutions with
batch norm before every ReLU, residual 1x1 shortcuts between blocks, global average pooling,
dropout 0.5 and a linear head. The paper has one sigmoid output trained with BCE; mars-core
takes every classifier as K logits with softmax (one form for probabilities, metrics and
scene records), and two logits with softmax cross-entropy are the same model family as one
logit with BCE (the softmax of [a, b] is the sigmoid of b - a). ``widths`` sets the depth
(one entry per downsampling block) and width; the README gives parameter counts.
With ``subclasses`` (``data.train_target: landmark``) the head has one logit per landmark
class and is trained on the landmark labels; in eval mode it returns the two classes' logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from mars_core.errors import MarsError
from mars_icepatch.resample import resample_square
from mars_icepatch.threshold import with_decision_threshold

#: How logits at several input scales become one: ``max`` keeps, per chip, the scale whose
#: "ice" margin (logit 1 - logit 0) is highest; ``mean`` averages the logits.
SCALE_RULES = ("max", "mean")


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, then batch norm (the ReLU comes after, outside)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))


class XceptionBlock(nn.Module):
    """ReLU-SepConv-BN x2 and a stride-2 max pool, plus a strided 1x1 conv shortcut."""

    def __init__(self, cin: int, cout: int, first_relu: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU() if first_relu else nn.Identity(), SeparableConv(cin, cout),
            nn.ReLU(), SeparableConv(cout, cout),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=2, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


def d4_mean_logits(net: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Logits averaged over the 8 rotations/reflections of the input (test-time augmentation).
    Why: the chips have no preferred orientation and the network is not invariant by
    construction; averaging removes the orientation's share of its variance (8x the cost)."""
    views = [torch.rot90(image, k, (2, 3)) for k in range(4)]
    views += [v.flip(3) for v in views]
    b = image.shape[0]
    return net(torch.cat(views)).view(8, b, -1).mean(0)


def multiscale_logits(logits: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor,
                      scales: Sequence[float], rule: str) -> torch.Tensor:
    """``logits`` of the input resampled by each factor in ``scales``, combined by ``rule``.
    Why: HiRISE browse chips of one landform come at different ground scales from one
    observation to the next (the same pits span twice the pixels in one as in another), and
    a network trained on a few observations recognises a landform only near the scales it
    saw; looking at several scales and keeping the most ice-like one (``max``) found the
    held-out observations' ice that one scale missed (BENCHMARK.md, round 6)."""
    side = image.shape[-1]
    outs = []
    for f in scales:
        outs.append(logits(resample_square(image, max(8, round(side * f)))))
    stacked = torch.stack(outs)  # [scales, B, K]
    if rule == "mean" or len(outs) == 1:
        return stacked.mean(0)
    best = (stacked[..., 1] - stacked[..., 0]).argmax(0)  # [B]: the most ice-like scale per chip
    return stacked[best, torch.arange(stacked.shape[1], device=image.device)]


def class_logits(fine: torch.Tensor, subclasses: Sequence[int]) -> torch.Tensor:
    """[B, K] class logits from [B, sum(subclasses)] sub-class logits: the log-sum-exp of each
    class's sub-classes, so that softmax(class logits) = the summed sub-class probabilities."""
    return torch.stack([g.logsumexp(1) for g in fine.split(list(subclasses), dim=1)], dim=1)


class XceptionSmall(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, stem: int = 16,
                 widths: Sequence[int] = (32, 64, 128), middle: int = 1, dropout: float = 0.5,
                 tta: bool = False, tta_scales: Sequence[float] = (1.0,), tta_scale_rule: str = "max",
                 subclasses: Sequence[int] | None = None) -> None:
        super().__init__()
        #: Sub-classes per class (given by the data source's contract): the head is trained on
        #: them and eval mode returns :func:`class_logits`. None: one logit per class.
        self.subclasses = tuple(int(n) for n in subclasses) if subclasses else None
        if self.subclasses is not None and (len(self.subclasses) != num_classes or min(self.subclasses) < 1):
            raise MarsError(f"model.subclasses needs one count >= 1 per class ({num_classes}), got {subclasses}")
        #: In eval mode, average the logits over the 8 D4 views (:func:`d4_mean_logits`).
        self.tta = bool(tta)
        #: In eval mode, also look at the input resampled by these factors (:func:`multiscale_logits`).
        self.tta_scales = tuple(float(f) for f in tta_scales)
        self.tta_scale_rule = str(tta_scale_rule)
        if not widths:
            raise ValueError("widths needs at least one block")
        if not self.tta_scales or any(not 0.25 <= f <= 4.0 for f in self.tta_scales):
            raise MarsError(f"model.tta_scales must be a non-empty list of factors in [0.25, 4], got {tta_scales}")
        if self.tta_scale_rule not in SCALE_RULES:
            raise MarsError(f"model.tta_scale_rule must be one of {', '.join(SCALE_RULES)}, got {tta_scale_rule!r}")
        if self.tta_scale_rule == "max" and len(self.tta_scales) > 1 and num_classes != 2:
            raise MarsError("model.tta_scale_rule 'max' needs two classes (it compares the 'ice' margin)")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(),
            nn.Conv2d(stem, 2 * stem, 3, padding=1, bias=False), nn.BatchNorm2d(2 * stem), nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        cin = 2 * stem
        for i, w in enumerate(widths):
            blocks.append(XceptionBlock(cin, w, first_relu=i > 0))
            cin = w
        for _ in range(middle):  # Xception's middle flow: residual SepConv triples, no downsampling
            blocks.append(MiddleBlock(cin))
        self.blocks = nn.Sequential(*blocks)
        self.exit = nn.Sequential(nn.ReLU(), SeparableConv(cin, 2 * cin), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(2 * cin, sum(self.subclasses) if self.subclasses else num_classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self._logits(image)
        if self.tta_scales != (1.0,):
            return multiscale_logits(self._one_scale, image, self.tta_scales, self.tta_scale_rule)
        return self._one_scale(image)

    def _one_scale(self, image: torch.Tensor) -> torch.Tensor:
        return d4_mean_logits(self._logits, image) if self.tta else self._logits(image)

    def _logits(self, image: torch.Tensor) -> torch.Tensor:
        z = self.head(self.exit(self.blocks(self.stem(image))))
        return z if self.training or self.subclasses is None else class_logits(z, self.subclasses)


class MiddleBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*(m for _ in range(3) for m in (nn.ReLU(), SeparableConv(c, c))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def xception_small(in_channels: int = 1, num_classes: int = 2, stem: int = 16,
                   widths: Sequence[int] = (32, 64, 128), middle: int = 1, dropout: float = 0.5,
                   tta: bool = False, tta_scales: Sequence[float] = (1.0,), tta_scale_rule: str = "max",
                   subclasses: Sequence[int] | None = None) -> nn.Module:
    """The reduced Xception (see the module docstring), with the stored decision threshold
    (:mod:`mars_icepatch.threshold`; 0.5 until one is chosen on validation chips)."""
    return with_decision_threshold(XceptionSmall(in_channels, num_classes, stem, tuple(widths), middle, dropout,
                                                 tta, tuple(tta_scales), tta_scale_rule, subclasses))


def resnet18(in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """timm ResNet-18, grayscale input, random initialisation (no weights are downloaded)."""
    import timm

    return with_decision_threshold(
        timm.create_model("resnet18", pretrained=False, in_chans=in_channels, num_classes=num_classes))


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters (the threshold buffer is not one)."""
    return sum(p.numel() for p in model.parameters())
