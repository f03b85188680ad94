"""The MMLS data source: the published layout, read from any path.

Layout (as published with the MarsLS-Net paper)::

    ROOT/train_partition/{images,masks}/      -> split "train"
    ROOT/validation_partition/{images,masks}/ -> split "val"
    ROOT/test_partition/{images,masks}/       -> split "test" (optional)

``images/Image_patch_R_C.tif`` pairs with ``masks/Mask_patch_R_C.tif``. Each image is a
128-page TIFF that ``tifffile`` reads as (128, 128, 7) float32 in [0, 1]; GDAL/rasterio see
only one 128x7 page, which is why we read with tifffile and check the shape ourselves.

Channel order is not documented upstream. We follow the order in which the paper lists the
modalities (RGB, DEM, thermal inertia, slope, grayscale): channels 0-2 are 8-bit-valued and
correlate at 0.93-0.99, which is consistent with them being the colour bands, and channel 6
is also 8-bit-valued (CTX grayscale). The assignment of 3/4/5 to DEM/TI/slope is the
paper's listing order and cannot be verified from the files.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mars_core.data import InputContract, Normalisation
from mars_core.errors import MarsError
from mars_core.tasks import TaskKind

CHANNEL_NAMES: tuple[str, ...] = ("red", "green", "blue", "dem", "thermal_inertia", "slope", "gray")
GROUPS: dict[str, tuple[int, ...]] = {
    "rgb": (0, 1, 2),
    "dem": (3,),
    "thermal_inertia": (4,),
    "ti": (4,),
    "slope": (5,),
    "gray": (6,),
    "grayscale": (6,),
    "all": tuple(range(7)),
}
for _i, _n in enumerate(CHANNEL_NAMES):
    GROUPS.setdefault(_n, (_i,))

#: Per-channel mean/std of the full published train partition (275 patches, computed once
#: with numpy over every pixel). Fixed constants rather than statistics of whatever root is
#: loaded, so a model trained on the sample and one trained on the full set expect the
#: same scaling, and the contract stored with a model never depends on the split it saw.
TRAIN_MEAN: tuple[float, ...] = (0.346615, 0.358172, 0.462985, 0.517656, 0.934169, 0.206184, 0.510264)
TRAIN_STD: tuple[float, ...] = (0.233911, 0.209442, 0.174693, 0.242057, 0.058067, 0.164293, 0.182535)

SPLIT_DIRS: dict[str, str] = {
    "train": "train_partition",
    "val": "validation_partition",
    "test": "test_partition",
}
TILE = 128
N_CHANNELS = 7
_IMAGE_RE = re.compile(r"^Image_(.+)\.tiff?$", re.IGNORECASE)


def resolve_channels(channels: str | int | Sequence[str | int] | None) -> list[int]:
    """Turn ``"all"``, ``["rgb", "dem"]``, ``[0, 3]`` or ``"rgb,slope"`` into channel indices.

    Order is kept as given (it is the order the model sees); duplicates are refused because
    they would silently double-weight a modality.
    """
    if channels is None:
        channels = "all"
    if isinstance(channels, str):
        items: list[Any] = [c.strip() for c in channels.split(",") if c.strip()]
    elif isinstance(channels, int):
        items = [channels]
    else:
        items = list(channels)
    if not items:
        raise MarsError("data.channels is empty; use 'all' or names among " + ", ".join(sorted(GROUPS)))
    out: list[int] = []
    for item in items:
        if isinstance(item, bool):
            raise MarsError(f"data.channels: invalid entry {item!r}")
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            idx = int(item)
            if not 0 <= idx < N_CHANNELS:
                raise MarsError(f"data.channels: index {idx} out of range 0..{N_CHANNELS - 1}")
            out.append(idx)
        elif isinstance(item, str) and item.lower() in GROUPS:
            out.extend(GROUPS[item.lower()])
        else:
            raise MarsError(
                f"data.channels: unknown channel {item!r}; allowed: {', '.join(sorted(GROUPS))} or 0..6"
            )
    if len(set(out)) != len(out):
        raise MarsError(f"data.channels selects a channel twice: {[CHANNEL_NAMES[i] for i in out]}")
    return out


def read_image(path: Path) -> np.ndarray:
    """Read one MMLS image as float32 [7, 128, 128], or raise a MarsError naming the file."""
    import tifffile

    try:
        arr = tifffile.imread(path)
    except Exception as exc:  # tifffile raises several types for non-TIFF input
        raise MarsError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[:2] == (TILE, TILE):
        arr = arr.transpose(2, 0, 1)
    elif not (arr.ndim == 3 and arr.shape[1:] == (TILE, TILE)):
        raise MarsError(
            f"{path}: expected a {TILE}x{TILE}x{N_CHANNELS} image (tifffile series), read shape {arr.shape}"
        )
    if arr.shape[0] != N_CHANNELS:
        raise MarsError(f"{path}: has {arr.shape[0]} channel(s), expected {N_CHANNELS} ({', '.join(CHANNEL_NAMES)})")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise MarsError(f"{path}: contains NaN or infinite values")
    return np.ascontiguousarray(arr)


def read_mask(path: Path) -> np.ndarray:
    """Read one MMLS mask as float32 [1, 128, 128] in {0, 1}, or raise naming the file."""
    import tifffile

    try:
        arr = np.asarray(tifffile.imread(path))
    except Exception as exc:
        raise MarsError(f"{path}: not a readable TIFF ({type(exc).__name__}: {exc})") from None
    arr = np.squeeze(arr)
    if arr.shape != (TILE, TILE):
        raise MarsError(f"{path}: expected a {TILE}x{TILE} mask, read shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise MarsError(f"{path}: mask contains NaN or infinite values")
    bad = np.setdiff1d(np.unique(arr), [0, 1])
    if bad.size:
        raise MarsError(f"{path}: mask values must be 0 or 1, found {bad[:5].tolist()}")
    return arr.astype(np.float32)[None]


def _is_tiff(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def find_pairs(split_dir: Path) -> list[tuple[Path, Path]]:
    """Pair ``images/Image_X.tif`` with ``masks/Mask_X.tif``.

    Non-TIFF files (the published train partition has a 1-byte file named ``test`` in each
    folder) are skipped with one warning that names them. A missing mask, or a folder with
    no TIFF at all, is an error naming the path.
    """
    img_dir, mask_dir = split_dir / "images", split_dir / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise MarsError(f"{d}: missing folder (expected {split_dir.name}/images and {split_dir.name}/masks)")
    skipped: list[str] = []
    pairs: list[tuple[Path, Path]] = []
    for p in sorted(img_dir.iterdir()):
        if not p.is_file():
            continue
        m = _IMAGE_RE.match(p.name)
        if m is None or not _is_tiff(p):
            skipped.append(str(p))
            continue
        mask = mask_dir / f"Mask_{m.group(1)}{p.suffix}"
        if not mask.is_file():
            raise MarsError(f"{p}: no matching mask {mask}")
        pairs.append((p, mask))
    for p in sorted(mask_dir.iterdir()):
        if p.is_file() and not _is_tiff(p):
            skipped.append(str(p))
    if skipped:
        warnings.warn(f"MMLS: skipped {len(skipped)} non-TIFF file(s): {', '.join(skipped)}", stacklevel=2)
    if not pairs:
        raise MarsError(f"{img_dir}: no MMLS image TIFFs (Image_*.tif) found")
    return pairs


class ArrayDataset(Dataset):
    """In-memory patches: MMLS splits are small (275 patches = 126 MB), so reading every file
    once up front validates the whole split before training starts and makes epochs cheap."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, channels: list[int], names: list[str]) -> None:
        mean = np.asarray(TRAIN_MEAN, dtype=np.float32)[channels, None, None]
        std = np.asarray(TRAIN_STD, dtype=np.float32)[channels, None, None]
        self.images = torch.from_numpy((images[:, channels] - mean) / std)
        self.masks = torch.from_numpy(masks.astype(np.float32))
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i], "index": torch.tensor(i)}


def load_split(split_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    pairs = find_pairs(split_dir)
    images = np.stack([read_image(p) for p, _ in pairs])
    masks = np.stack([read_mask(m) for _, m in pairs])
    return images, masks, [p.stem for p, _ in pairs]


class MMLSSource:
    """Data source ``mmls``. ``root=None`` uses the bundled sample (see :mod:`.sample`)."""

    def __init__(
        self,
        root: str | None = None,
        channels: str | list[str | int] = "all",
        photometric: bool = True,
        brightness: float = 0.1,
        contrast: float = 0.1,
        train_crop: int | None = None,
    ) -> None:
        if train_crop is not None and not 8 <= train_crop <= TILE:
            raise MarsError(f"data.train_crop must be between 8 and {TILE}, got {train_crop}")
        self.train_crop = train_crop
        self.channels = resolve_channels(channels)
        self.root = root
        self.photometric = photometric
        self.brightness, self.contrast = brightness, contrast
        self._cache: dict[str, ArrayDataset] = {}
        if root is None:
            self._splits = ["train", "val"]
        else:
            base = Path(root).expanduser()
            if not base.is_dir():
                raise MarsError(f"MMLS root {base} is not a directory")
            self._splits = [s for s, d in SPLIT_DIRS.items() if (base / d).is_dir()]
            if not self._splits:
                raise MarsError(
                    f"{base}: no MMLS partitions found (expected {', '.join(SPLIT_DIRS.values())})"
                )
            self.base = base

    @property
    def band_names(self) -> list[str]:
        return [CHANNEL_NAMES[i] for i in self.channels]

    def splits(self) -> list[str]:
        return list(self._splits)

    def dataset(self, split: str) -> ArrayDataset:
        if split not in self._splits:
            where = "the bundled sample" if self.root is None else str(self.root)
            raise MarsError(f"split '{split}' not available in {where}; available: {', '.join(self._splits)}")
        if split not in self._cache:
            if self.root is None:
                from mars_landslide.sample import load_sample

                images, masks, names = load_sample(split)
            else:
                images, masks, names = load_split(self.base / SPLIT_DIRS[split])
            self._cache[split] = ArrayDataset(images, masks, self.channels, names)
        return self._cache[split]

    def input_contract(self) -> InputContract:
        return InputContract(
            kind=TaskKind.SEGMENTATION,
            bands=self.band_names,
            normalisation=Normalisation(
                mean=[TRAIN_MEAN[i] for i in self.channels], std=[TRAIN_STD[i] for i in self.channels]
            ),
            tile_size=TILE,
            channel_indices=self.channels,
            source_format="MMLS 128-page TIFF (tifffile series 128x128x7, float32 in [0,1])",
        )

    def train_augmentation(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        from mars_landslide.augment import LandslideAugment

        optical = [i for i, c in enumerate(self.channels) if c in (0, 1, 2, 6)]
        return LandslideAugment(
            optical_channels=optical if self.photometric else [],
            brightness=self.brightness,
            contrast=self.contrast,
            crop=self.train_crop,
        )

    def preview(self, sample: dict[str, torch.Tensor]) -> list[tuple[str, np.ndarray]]:
        from mars_landslide.preview import preview_panels

        return preview_panels(sample, self.channels)
