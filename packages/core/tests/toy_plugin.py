"""A throwaway plugin with a tiny SYNTHETIC task, for the core's own tests.

Images are random noise with bright squares; the mask marks the squares. Nothing here is
real data. The task is registered only while a test's fixture holds it (or when a test
subprocess registers it itself), never by an installed entry point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mars_core import hookimpl
from mars_core.data import InputContract, Normalisation
from mars_core.tasks import TaskKind, TaskSpec

PLUGIN_NAME = "toy-test-plugin"
TASK_YAML = Path(__file__).with_name("toy_task.yaml")


class SquaresDataset(Dataset):
    """Deterministic synthetic squares: sample i is the same on every call."""

    def __init__(self, n: int, size: int, channels: int, seed: int) -> None:
        self.n, self.size, self.channels, self.seed = n, size, channels, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(self.seed * 100_003 + i)
        img = rng.normal(0.0, 0.3, size=(self.channels, self.size, self.size)).astype(np.float32)
        mask = np.zeros((1, self.size, self.size), dtype=np.float32)
        for _ in range(rng.integers(1, 3)):
            s = int(rng.integers(3, self.size // 2))
            y, x = rng.integers(0, self.size - s, size=2)
            mask[0, y : y + s, x : x + s] = 1.0
        img += mask * 1.0
        return {"image": torch.from_numpy(img), "mask": torch.from_numpy(mask), "index": torch.tensor(i)}


class ToySource:
    def __init__(self, root: str | None = None, n_train: int = 32, n_val: int = 8, n_test: int = 8,
                 size: int = 16, channels: int = 2) -> None:
        self.root = root
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.size, self.channels = size, channels

    def splits(self) -> list[str]:
        return [s for s, n in self.sizes.items() if n > 0]

    def dataset(self, split: str) -> Dataset:
        seed = {"train": 1, "val": 2, "test": 3}[split]
        return SquaresDataset(self.sizes[split], self.size, self.channels, seed)

    def input_contract(self) -> InputContract:
        return InputContract(
            kind=TaskKind.SEGMENTATION,
            bands=[f"b{i}" for i in range(self.channels)],
            normalisation=Normalisation(mean=[0.0] * self.channels, std=[1.0] * self.channels),
            tile_size=self.size,
        )

    def train_augmentation(self):
        return None


class TinyNet(nn.Module):
    def __init__(self, in_channels: int = 2, width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class ConstantNet(nn.Module):
    """One learnable logit broadcast to every pixel: the textbook degenerate model."""

    def __init__(self, in_channels: int = 2) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(image.shape[0], 1, *image.shape[2:])


@hookimpl
def register_datasources(register) -> None:
    register("toy-squares", ToySource, description="SYNTHETIC squares for tests")


@hookimpl
def register_models(register) -> None:
    register("tiny-net", TinyNet, description="two-layer conv net for tests")
    register("constant-net", ConstantNet, description="one logit everywhere (degenerate on purpose)")


@hookimpl
def register_tasks(register) -> None:
    register(TaskSpec(name="toy", kind=TaskKind.SEGMENTATION, default_config=TASK_YAML,
                      distribution="(tests)", description="SYNTHETIC toy segmentation"))


def install() -> None:
    """Register this module as a plugin in the current process."""
    import sys

    from mars_core import plugins

    plugins.register_plugin(sys.modules[__name__], PLUGIN_NAME)


def uninstall() -> None:
    from mars_core import plugins

    plugins.unregister_plugin(PLUGIN_NAME)
