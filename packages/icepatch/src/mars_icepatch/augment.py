"""Training augmentation of chip batches (``data.augment``), applied by the engine on device.

Why: the shared folder holds 11 ice observations, so the model sees few distinct ice scenes;
the folder's own copies (``-r90 -fh -brt`` ...) are fixed, while drawing a new orientation
and brightness for every chip in every epoch lets more epochs help instead of memorising.

* ``d4``: one of the 8 rotations/reflections of the square per chip. HiRISE chips have no
  preferred "up" for these landforms (the folder's own copies are rotations and flips).
* ``brightness``: per chip, x * exp(N(0, gain_sd)) + N(0, offset_sd), then clipped to
  [0, 1.5]. Browse chips keep their brightness relative to their scene (``chip_stretch``),
  which differs between observations; jitter keeps the model from leaning on the exact level.
* ``zoom``: per chip, a random square window of side (1 - zoom_max * U(0, 1)) of the chip,
  anywhere inside it, resampled back to the full size (so up to 1 / (1 - zoom_max) x
  magnification). Observations differ in scale (binning, landform size): the landforms of a
  held-out swiss-cheese observation were larger than those of the others; in scratch 5-fold
  probes by observation (an auxiliary landmark head in both) the balanced accuracy rose from
  0.767 to 0.815 with ``zoom_max`` 0.5 (BENCHMARK.md). ``zoom_out`` > 0 also lets the
  window grow past the chip (side up to 1 + zoom_out, the outside filled by reflection), so
  landforms are also seen smaller than in the chip.
* ``scale``: per batch, the whole input resampled by a factor U(scale_min, scale_max)
  (default 0.5-1.5), so the network is trained at the sizes it is shown at test time
  (``model.tta_scales``, the same ``resample_square``). Why: the test-time scales keep per
  chip the most ice-like of several looks, and a network that never saw terrain at a size
  may be more often wrong there (16 of 26 false alarms in two folds of round 6 came from the
  smallest look); the network is fully convolutional with global pooling, so any input size
  is valid. One factor per batch keeps the batch one tensor. Measured in round 8
  (BENCHMARK.md): it did not lower those false alarms, so it is not in the default.
* ``contrast``: per chip, a gamma x ** exp(N(0, gamma_sd)) and a contrast gain
  m + (x - m) * exp(N(0, contrast_sd)) about the chip's mean m. Browse images are stretched
  per observation and taken under different sun angles, so the same landform reaches a held-out
  observation with another tone curve, not only another level (which ``brightness`` covers).
* ``blur``: per chip, a Gaussian blur of sigma U(0, blur_max) model pixels: observations
  differ in binning and in their browse image's reduction, so in sharpness.

Nothing here sees latitude or any metadata: only the image tensor is changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from mars_core.errors import MarsError
from mars_icepatch.resample import resample_square

KINDS = ("d4", "brightness", "zoom", "contrast", "blur", "scale")


class ChipAugmentation:
    """Callable on an engine batch (``image`` [B, 1, S, S], ``label``); returns a new batch."""

    def __init__(self, kinds: Sequence[str], gain_sd: float = 0.15, offset_sd: float = 0.05,
                 zoom_max: float = 0.5, zoom_out: float = 0.0, gamma_sd: float = 0.25,
                 contrast_sd: float = 0.25, blur_max: float = 1.5,
                 scale_min: float = 0.5, scale_max: float = 1.5) -> None:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown:
            raise MarsError(f"data.augment: unknown kind(s) {', '.join(unknown)}; allowed: {', '.join(KINDS)}")
        if not 0.0 <= float(zoom_max) < 1.0:
            raise MarsError(f"data.augment.zoom_max must be in [0, 1), got {zoom_max}")
        for name, value in (("zoom_out", zoom_out), ("gamma_sd", gamma_sd), ("contrast_sd", contrast_sd),
                            ("blur_max", blur_max), ("gain_sd", gain_sd), ("offset_sd", offset_sd)):
            if not float(value) >= 0.0:
                raise MarsError(f"data.augment.{name} must be >= 0, got {value}")
        if not 0.0 < float(scale_min) <= float(scale_max):
            raise MarsError(f"data.augment: need 0 < scale_min <= scale_max, got {scale_min}, {scale_max}")
        self.scale_min, self.scale_max = float(scale_min), float(scale_max)
        self.kinds, self.gain_sd, self.offset_sd = tuple(kinds), float(gain_sd), float(offset_sd)
        self.zoom_max, self.zoom_out = float(zoom_max), float(zoom_out)
        self.gamma_sd, self.contrast_sd, self.blur_max = float(gamma_sd), float(contrast_sd), float(blur_max)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        x = batch["image"]
        if "d4" in self.kinds:
            k = torch.randint(0, 4, (x.shape[0],)).tolist()
            flip = (torch.rand(x.shape[0]) < 0.5).tolist()
            x = torch.stack([torch.rot90(xi, ki, (1, 2)).flip(2) if fi else torch.rot90(xi, ki, (1, 2))
                             for xi, ki, fi in zip(x, k, flip, strict=True)])
        if "zoom" in self.kinds and (self.zoom_max > 0 or self.zoom_out > 0):
            x = zoom(x, self.zoom_max, self.zoom_out)
        if "blur" in self.kinds and self.blur_max > 0:
            x = blur(x, self.blur_max)
        if "contrast" in self.kinds:
            x = tone(x, self.gamma_sd, self.contrast_sd)
        if "brightness" in self.kinds:
            shape = (x.shape[0],) + (1,) * (x.ndim - 1)
            gain = torch.exp(torch.randn(shape, device=x.device) * self.gain_sd)
            offset = torch.randn(shape, device=x.device) * self.offset_sd
            x = (x * gain + offset).clamp(0.0, 1.5)
        if "scale" in self.kinds:
            f = self.scale_min + (self.scale_max - self.scale_min) * float(torch.rand(()))
            x = resample_square(x, max(8, round(x.shape[-1] * f)))
        return {**batch, "image": x.contiguous()}


def zoom(x: torch.Tensor, zoom_max: float, zoom_out: float = 0.0) -> torch.Tensor:
    """Each chip of ``x`` [B, C, S, S] replaced by a random window of it (side fraction in
    (1 - zoom_max, 1 + zoom_out]) resampled bilinearly to S x S, in one batched ``grid_sample``."""
    b = x.shape[0]
    # side drawn so that zoom_out = 0 gives 1 - zoom_max * U exactly (the default's draws)
    side = 1.0 + zoom_out - (zoom_max + zoom_out) * torch.rand(b, device=x.device)
    # window centre in normalised coordinates: a window inside the chip stays inside it; a
    # larger one stays centred with its margin mirrored
    shift = (1 - side).clamp(min=0)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = side, side
    theta[:, 0, 2] = (torch.rand(b, device=x.device) * 2 - 1) * shift
    theta[:, 1, 2] = (torch.rand(b, device=x.device) * 2 - 1) * shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    padding = "reflection" if zoom_out > 0 else "border"
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def tone(x: torch.Tensor, gamma_sd: float, contrast_sd: float) -> torch.Tensor:
    """Per chip: gamma on the non-negative values, then a contrast gain about the chip's mean;
    the no-data black (0) stays at or near 0 under the gamma."""
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    gamma = torch.exp(torch.randn(shape, device=x.device) * gamma_sd)
    x = x.clamp(min=0.0) ** gamma
    mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
    gain = torch.exp(torch.randn(shape, device=x.device) * contrast_sd)
    return (mean + (x - mean) * gain).clamp(0.0, 1.5)


def blur(x: torch.Tensor, blur_max: float) -> torch.Tensor:
    """Per chip a separable Gaussian blur of sigma U(0, blur_max) pixels (sigma near 0: the
    kernel is a delta), as one grouped convolution over the batch."""
    b, c = x.shape[0], x.shape[1]
    radius = max(1, int(3 * blur_max + 0.5))
    sigma = (torch.rand(b, device=x.device) * blur_max).clamp(min=1e-3)
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None].to(x.dtype)) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # [B*C, K]
    flat = F.pad(x.reshape(1, b * c, *x.shape[2:]), (radius, radius, radius, radius), mode="reflect")
    flat = F.conv2d(flat, kernel[:, None, None, :], groups=b * c)
    flat = F.conv2d(flat, kernel[:, None, :, None], groups=b * c)
    return flat.reshape(x.shape)


def augmentation_from_config(value: Any) -> ChipAugmentation | None:
    """``data.augment``: None/false/[] = none; a list of kinds; or a dict ``{kinds: [...],
    gain_sd: ..., offset_sd: ..., zoom_max: ..., zoom_out: ..., gamma_sd: ..., contrast_sd: ...,
    blur_max: ..., scale_min: ..., scale_max: ...}``."""
    if value in (None, False, [], ()):
        return None
    if isinstance(value, str):
        return ChipAugmentation([value])
    if isinstance(value, dict):
        params = dict(value)
        return ChipAugmentation(params.pop("kinds", KINDS), **params)
    return ChipAugmentation(list(value))
