"""A throwaway plugin with a SYNTHETIC patch-classification task, for the core's own tests.

A patch is class 1 ("bright") when its mean is raised, else class 0 ("plain"). The task
names a chunk filter and a scene summariser by import path, as a task package would.
Nothing here is real data; the task is registered only while a test holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mars_core import hookimpl
from mars_core.data import InputContract, Normalisation
from mars_core.tasks import TaskKind, TaskSpec

PLUGIN_NAME = "toy-patch-test-plugin"
TASK_YAML = Path(__file__).with_name("toy_patch_task.yaml")
CLASSES = ["plain", "bright"]
MEAN, STD = 100.0, 20.0


class Patches(Dataset):
    def __init__(self, n: int, size: int, seed: int) -> None:
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(self.seed * 7919 + i)
        label = i % 2
        img = rng.normal(0.0, 0.3, size=(1, self.size, self.size)).astype(np.float32) + 1.5 * label
        return {"image": torch.from_numpy(img), "label": torch.tensor(label)}


class PatchSource:
    def __init__(self, root: str | None = None, n_train: int = 16, n_val: int = 8, n_test: int = 8,
                 size: int = 8) -> None:
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.size = size

    def splits(self) -> list[str]:
        return [s for s, n in self.sizes.items() if n > 0]

    def dataset(self, split: str) -> Dataset:
        return Patches(self.sizes[split], self.size, {"train": 1, "val": 2, "test": 3}[split])

    def input_contract(self) -> InputContract:
        return InputContract(kind=TaskKind.CLASSIFICATION, bands=["b0"], tile_size=self.size, classes=CLASSES,
                             normalisation=Normalisation(mean=[MEAN], std=[STD]))

    def train_augmentation(self):
        return None


class MeanClassifier(nn.Module):
    """Logits linear in the patch mean: the probability of every chunk is computable by hand."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.head = nn.Linear(in_channels, num_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(image.mean(dim=(2, 3)))


def dark_centre(chunk: np.ndarray, valid: np.ndarray, params: dict[str, Any]) -> str | None:
    """SYNTHETIC filter: skip a chunk whose centre pixel is 0 in every band (a black gap)."""
    h, w = chunk.shape[1:]
    if (chunk[:, h // 2, w // 2] <= params.get("black", 0)).all():
        return "black centre"
    return None


class Summaries:
    calls: ClassVar[list[tuple[int, dict[str, Any]]]] = []


def verdict(records: list[dict[str, Any]], classes: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """SYNTHETIC summariser: 'bright' when at least ``min_bright`` chunks are bright."""
    Summaries.calls.append((len(records), dict(params)))
    n = sum(1 for r in records if not r["skipped"] and r["p"] >= params.get("threshold", 0.5))
    return {"bright_chunks": n, "verdict": "bright" if n >= params.get("min_bright", 1) else "plain"}


@hookimpl
def register_datasources(register) -> None:
    register("toy-patches", PatchSource, description="SYNTHETIC bright/plain patches for tests")


@hookimpl
def register_models(register) -> None:
    register("mean-classifier", MeanClassifier, description="linear in the patch mean, for tests")


@hookimpl
def register_tasks(register) -> None:
    register(TaskSpec(name="toy-patch", kind=TaskKind.CLASSIFICATION, default_config=TASK_YAML,
                      distribution="(tests)", description="SYNTHETIC patch classification",
                      chunk_filter=f"{__name__}:dark_centre", scene_summariser=f"{__name__}:verdict"))


def install() -> None:
    import sys

    from mars_core import plugins

    plugins.register_plugin(sys.modules[__name__], PLUGIN_NAME)


def uninstall() -> None:
    from mars_core import plugins

    plugins.unregister_plugin(PLUGIN_NAME)
