"""Training augmentation of glacier tiles, applied to whole batches on the training device.

``flip``: random horizontal/vertical flips and 90-degree rotations (the label moves with
the image; nothing about glaciers has a preferred orientation in a north-up tile).
``jitter``: colour jitter of the normalised bands: per sample a brightness offset and a
contrast gain (shared by the four bands, so band ratios such as NIR/red keep their
meaning) of strength ``jitter``. The paper found augmentation hurt; BENCHMARK.md compares
``[flip, jitter]`` against ``[]`` on the same folds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mars_core.errors import MarsError

KINDS = ("flip", "jitter")


def check_augment(augment: Sequence[str] | None) -> tuple[str, ...]:
    names = tuple(augment or ())
    bad = [a for a in names if a not in KINDS]
    if bad:
        raise MarsError(f"data.augment: unknown augmentation(s) {', '.join(bad)}; allowed: {', '.join(KINDS)}")
    return names


def make_augmentation(augment: Sequence[str], jitter: float = 0.1) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    names = check_augment(augment)
    if not names:
        return None

    def apply(batch: dict[str, Any]) -> dict[str, Any]:
        import torch

        image, mask = batch["image"], batch["mask"]
        if "flip" in names:
            if torch.rand(()) < 0.5:
                image, mask = image.flip(-1), mask.flip(-1)
            if torch.rand(()) < 0.5:
                image, mask = image.flip(-2), mask.flip(-2)
            k = int(torch.randint(0, 4, ()))
            if k:
                image, mask = image.rot90(k, (-2, -1)), mask.rot90(k, (-2, -1))
        if "jitter" in names and jitter > 0:
            b = image.shape[0]
            gain = 1 + (torch.rand(b, 1, 1, 1, device=image.device) * 2 - 1) * jitter
            offset = (torch.rand(b, 1, 1, 1, device=image.device) * 2 - 1) * jitter
            image = image * gain + offset
        return {**batch, "image": image.contiguous(), "mask": mask.contiguous()}

    return apply
