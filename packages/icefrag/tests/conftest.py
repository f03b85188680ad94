from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from icefrag_testutil import write_tif  # noqa: E402


@pytest.fixture
def pair_root(tmp_path: Path):
    """Three tiny scenes in t1/t2/mask with role tokens in the names; masks encoded 1/255."""
    rng = np.random.default_rng(0)
    for i in range(3):
        a = rng.integers(0, 4000, (64, 64)).astype(np.uint16)
        m = np.full((64, 64), 255, np.uint8)
        m[10:20, 10:20] = 1
        write_tif(tmp_path / "t1" / f"ESP_{i:03d}_pre.tif", a)
        write_tif(tmp_path / "t2" / f"ESP_{i:03d}_post.tif", a)
        write_tif(tmp_path / "mask" / f"ESP_{i:03d}_mask.tif", m)
    return tmp_path


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, oversubscribed OpenMP threads made
    small convolutions 3-20x slower than a single thread; restored after each test."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)
