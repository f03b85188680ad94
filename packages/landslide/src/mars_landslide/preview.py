"""Panels for the sample-prediction grid: RGB, DEM, truth and prediction side by side."""

from __future__ import annotations

import numpy as np
import torch

from mars_landslide.mmls import TRAIN_MEAN, TRAIN_STD


def _denorm(x: torch.Tensor, ch: int) -> np.ndarray:
    return (x.float().cpu().numpy() * TRAIN_STD[ch] + TRAIN_MEAN[ch]).clip(0, 1)


def preview_panels(sample: dict[str, torch.Tensor], channels: list[int]) -> list[tuple[str, np.ndarray]]:
    """``sample`` holds one patch: ``image`` [C,H,W] (normalised), ``mask`` and ``probs``."""
    image = sample["image"]
    pos = {c: i for i, c in enumerate(channels)}
    panels: list[tuple[str, np.ndarray]] = []
    if all(c in pos for c in (0, 1, 2)):
        rgb = np.stack([_denorm(image[pos[c]], c) for c in (0, 1, 2)], axis=-1)
        panels.append(("RGB", rgb))
    elif 6 in pos:
        panels.append(("gray", _denorm(image[pos[6]], 6)))
    if 3 in pos:
        panels.append(("DEM", _denorm(image[pos[3]], 3)))
    if "mask" in sample:
        panels.append(("truth", sample["mask"].float().cpu().numpy().reshape(image.shape[-2:])))
    if "probs" in sample:
        prob = sample["probs"].float().cpu().numpy().reshape(image.shape[-2:])
        panels.append(("prediction", (prob >= 0.5).astype(np.float32)))
    return panels
