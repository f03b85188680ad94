"""Shared fixtures: small real scenes (crops of the bundled Everest sample) written to tmp_path."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from glacier_testutil import SAMPLE, crop_scene  # noqa: E402


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def scene_dir(tmp_path: Path) -> Path:
    """A 256 x 384 px crop of the real sample (RGB + B4 pair) with the sample's outlines."""
    root = tmp_path / "scene"
    crop_scene(root, rows=(0, 256), cols=(0, 384))
    shutil.copy(SAMPLE / "everest_sample_rgi60_outlines.geojson", root / "outlines.geojson")
    return root
