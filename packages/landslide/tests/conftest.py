"""Shared fixtures: where the real MMLS data lives (if it does) and tiny bad TIFFs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


def real_root() -> Path:
    env = os.environ.get("MARS_MMLS_ROOT")
    if env:
        return Path(env)
    # <repo>/packages/landslide/tests/conftest.py -> <repo>/../shared/data/mmls
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mmls"


@pytest.fixture(scope="session")
def mmls_root() -> Path:
    root = real_root()
    if not (root / "train_partition").is_dir():
        pytest.skip(f"real MMLS data not found at {root} (set MARS_MMLS_ROOT to run these tests)")
    return root


def write_image(path: Path, arr: np.ndarray) -> None:
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Path:
    """A valid MMLS-layout root with 2 train and 1 val patch of random data."""
    rng = np.random.default_rng(0)
    for part, n in (("train_partition", 2), ("validation_partition", 1)):
        for i in range(n):
            write_image(tmp_path / part / "images" / f"Image_patch_0_{i}.tif",
                        rng.random((128, 128, 7), dtype=np.float32))
            write_image(tmp_path / part / "masks" / f"Mask_patch_0_{i}.tif",
                        (rng.random((128, 128)) > 0.5).astype(np.float32))
    return tmp_path
