"""Helpers for the icepatch tests: real sample chips, scenes tiled from them, an untrained
model directory (weights random, seed fixed) that ``mars-core predict`` can load."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine

from mars_core.config import load_task_config
from mars_core.tracking.model_io import save_model_dir
from mars_icepatch.chips import HiriseChips, read_chip, read_labels, sample_root
from mars_icepatch.models import xception_small
from mars_icepatch.plugin import TASK_YAML

TRANSFORM = Affine(0.25, 0.0, 1000.0, 0.0, -0.25, -2000.0)


def sample_chips() -> list:
    return read_labels(sample_root())


def tiled_scene(n_rows: int, n_cols: int, start: int = 0) -> np.ndarray:
    """A uint8 mosaic of REAL 227 px sample chips (n_rows x n_cols of them)."""
    chips = sample_chips()
    rows = [np.hstack([read_chip(chips[(start + r * n_cols + c) % len(chips)].path) for c in range(n_cols)])
            for r in range(n_rows)]
    return np.vstack(rows)


def write_scene(path: Path, data: np.ndarray, driver: str = "GTiff", nodata: float | None = 0) -> Path:
    data = data if data.ndim == 3 else data[None]
    with rasterio.open(path, "w", driver=driver, width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=None, transform=TRANSFORM, nodata=nodata) as ds:
        ds.write(data)
    return path


def model_dir(tmp: Path, input_size: int = 64, overrides: list[str] | None = None, seed: int = 0,
              name: str = "model") -> Path:
    """An untrained xception-small (weights drawn with ``seed``) saved as a mars model
    directory ``tmp/name`` (predict section: chunk 227, input 64)."""
    cfg = load_task_config(TASK_YAML, overrides=[f"data.input_size={input_size}", "predict.chunk=227",
                                                 f"predict.input_size={input_size}", "model.widths=[16, 32]",
                                                 "model.stem=8", *(overrides or [])])
    torch.manual_seed(seed)
    model = xception_small(widths=[16, 32], stem=8).eval()
    contract = HiriseChips(None, input_size=input_size).input_contract()
    return save_model_dir(model, cfg, contract, tmp / name)


def copy_sample(dst: Path, n: int | None = None) -> Path:
    """A writable copy of the bundled sample (first ``n`` rows of labels.csv)."""
    src = sample_root()
    (dst / "chips").mkdir(parents=True)
    with open(src / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows = rows if n is None else rows[:n]
    with open(dst / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        shutil.copy(src / "chips" / r["file"], dst / "chips" / r["file"])
    return dst
