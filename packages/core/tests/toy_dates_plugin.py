"""A throwaway plugin with a SYNTHETIC three-date change task, for the core's own tests.

Three dates of noise; a bright square appears at the third date, and the mask marks it.
Every sample carries acquisition times (days since J2000). Nothing here is real data; the
task is registered only while a test holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from mars_core import hookimpl
from mars_core.data import InputContract, Normalisation
from mars_core.tasks import TaskKind, TaskSpec

PLUGIN_NAME = "toy-dates-test-plugin"
TASK_YAML = Path(__file__).with_name("toy_dates_task.yaml")
T = 3
#: SYNTHETIC acquisition times of sample i: these plus i (days since J2000).
BASE_TIMES = (7000.0, 7010.0, 7020.0)


class ThreeDates(Dataset):
    def __init__(self, n: int, size: int, seed: int) -> None:
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng(self.seed * 1009 + i)
        base = rng.normal(0.0, 0.3, size=(1, self.size, self.size)).astype(np.float32)
        mask = np.zeros((1, self.size, self.size), np.float32)
        s = int(rng.integers(3, self.size // 2))
        y, x = rng.integers(0, self.size - s, size=2)
        mask[0, y : y + s, x : x + s] = 1.0
        out = {f"image{k + 1}": torch.from_numpy(base + rng.normal(0, 0.05, base.shape).astype(np.float32))
               for k in range(T)}
        out[f"image{T}"] = out[f"image{T}"] + torch.from_numpy(mask)
        out["mask"] = torch.from_numpy(mask)
        out["times"] = torch.tensor([t + i for t in BASE_TIMES], dtype=torch.float32)
        return out


class DatesSource:
    def __init__(self, root: str | None = None, n_train: int = 16, n_val: int = 4, n_test: int = 4,
                 size: int = 16) -> None:
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.size = size

    def splits(self) -> list[str]:
        return [s for s, n in self.sizes.items() if n > 0]

    def dataset(self, split: str) -> Dataset:
        return ThreeDates(self.sizes[split], self.size, {"train": 1, "val": 2, "test": 3}[split])

    def input_contract(self) -> InputContract:
        return InputContract(kind=TaskKind.CHANGE_DETECTION, bands=["b0"], n_inputs=T, tile_size=self.size,
                             normalisation=Normalisation(mean=[0.0], std=[1.0]))

    def train_augmentation(self):
        return None


class PointwiseDates(nn.Module):
    """A 1x1 conv over the stacked dates: its output at a pixel depends on that pixel only,
    so a scene prediction can be checked against one direct forward. Records the times it
    was given (class-level, for the tests)."""

    seen_times: ClassVar[list[torch.Tensor]] = []

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(T * in_channels, 1, 1)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, image3: torch.Tensor,
                times: torch.Tensor | None = None) -> torch.Tensor:
        PointwiseDates.seen_times.append(times.detach().cpu().clone() if times is not None else None)
        return self.conv(torch.cat([image1, image2, image3], dim=1))


@hookimpl
def register_datasources(register) -> None:
    register("toy-dates", DatesSource, description="SYNTHETIC three-date changes for tests")


@hookimpl
def register_models(register) -> None:
    register("pointwise-dates", PointwiseDates, description="1x1 conv over three dates, for tests")


@hookimpl
def register_tasks(register) -> None:
    register(TaskSpec(name="toy-dates", kind=TaskKind.CHANGE_DETECTION, default_config=TASK_YAML,
                      distribution="(tests)", description="SYNTHETIC three-date change detection"))


def install() -> None:
    import sys

    from mars_core import plugins

    plugins.register_plugin(sys.modules[__name__], PLUGIN_NAME)


def uninstall() -> None:
    from mars_core import plugins

    plugins.unregister_plugin(PLUGIN_NAME)
