"""The MMLS data source: the published layout, read from any path.

Layout (as published with the MarsLS-Net paper)::

    ROOT/train_partition/{images,masks}/      -> split "train"
    ROOT/validation_partition/{images,masks}/ -> split "val"
    ROOT/test_partition/{images,masks}/       -> split "test" (optional)

``images/Image_patch_R_C.tif`` pairs with ``masks/Mask_patch_R_C.tif``; the published
``test_partition`` writes ``ImageT_patch_R_C.tif`` / ``MaskT_patch_R_C.tif``. Files are paired
by their grid position ``R_C`` (the trailing ``patch_R_C``) whatever the prefix, and the
prefixes found are reported. Each image is a
128-page TIFF that ``tifffile`` reads as (128, 128, 7) float32 in [0, 1]; GDAL/rasterio see
only one 128x7 page, which is why we read with tifffile and check the shape ourselves.

Channel order is not documented upstream. We follow the order in which the paper lists the
modalities (RGB, DEM, thermal inertia, slope, grayscale): channels 0-2 are 8-bit-valued and
correlate at 0.93-0.99, which is consistent with them being the colour bands, and channel 6
is also 8-bit-valued (CTX grayscale). The assignment of 3/4/5 to DEM/TI/slope is the
paper's listing order and cannot be verified from the files.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
#: ``<prefix>patch_R_C.tif``: the grid position (row R, column C) of a patch is what pairs an
#: image with its mask, and what a spatial split groups by.
_PATCH_RE = re.compile(r"^(?P<prefix>.*?)patch_(?P<row>\d+)_(?P<col>\d+)\.tiff?$", re.IGNORECASE)

log = logging.getLogger(__name__)


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


def grid_position(name: str) -> tuple[int, int] | None:
    """(R, C) from a name ending in ``patch_R_C`` (with or without ``.tif``), else None."""
    m = _PATCH_RE.match(name if name.lower().endswith((".tif", ".tiff")) else name + ".tif")
    return (int(m.group("row")), int(m.group("col"))) if m else None


@dataclass
class SplitListing:
    """What :func:`scan_split` found in one partition folder: pairs in image-name order, the
    grid position of each, the file-name prefixes seen, and the non-TIFF files skipped."""

    pairs: list[tuple[Path, Path]]
    positions: list[tuple[int, int]]
    image_prefixes: list[str]
    mask_prefixes: list[str]
    skipped: list[str] = field(default_factory=list)

    def describe(self, split_dir: Path) -> str:
        return (f"MMLS {split_dir}: {len(self.pairs)} image/mask pairs matched by grid position R_C; "
                f"image prefix(es) {', '.join(repr(p) for p in self.image_prefixes)}, "
                f"mask prefix(es) {', '.join(repr(p) for p in self.mask_prefixes)}"
                + (f"; skipped {len(self.skipped)} non-TIFF file(s)" if self.skipped else ""))


def _index_folder(folder: Path, kind: str, skipped: list[str]) -> tuple[dict[tuple[int, int], Path], list[str]]:
    """{(R, C): path} for the TIFFs of one folder; non-TIFF files go to ``skipped``."""
    found: dict[tuple[int, int], Path] = {}
    prefixes: list[str] = []
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if not _is_tiff(p):
            skipped.append(str(p))
            continue
        m = _PATCH_RE.match(p.name)
        if m is None:
            raise MarsError(f"{p}: {kind} TIFF name does not end in patch_R_C.tif (R, C = grid row, column), "
                            "so it cannot be paired")
        key = (int(m.group("row")), int(m.group("col")))
        if key in found:
            raise MarsError(f"{found[key]} and {p}: two {kind}s at grid position {key[0]}_{key[1]}")
        found[key] = p
        prefix = m.group("prefix").rstrip("_-. ")
        if prefix not in prefixes:
            prefixes.append(prefix)
    return found, sorted(prefixes)


def scan_split(split_dir: Path) -> SplitListing:
    """Pair ``images/<prefix>patch_R_C.tif`` with ``masks/<prefix>patch_R_C.tif`` by R_C.

    Non-TIFF files (the published train partition has a 1-byte file named ``test`` in each
    folder) are skipped with one warning that names them. An image without mask, a mask
    without image, two files at one grid position, or a folder with no TIFF at all is an
    error naming the path.
    """
    img_dir, mask_dir = split_dir / "images", split_dir / "masks"
    for d in (img_dir, mask_dir):
        if not d.is_dir():
            raise MarsError(f"{d}: missing folder (expected {split_dir.name}/images and {split_dir.name}/masks)")
    skipped: list[str] = []
    images, image_prefixes = _index_folder(img_dir, "image", skipped)
    masks, mask_prefixes = _index_folder(mask_dir, "mask", skipped)
    if skipped:
        warnings.warn(f"MMLS: skipped {len(skipped)} non-TIFF file(s): {', '.join(skipped)}", stacklevel=3)
    if not images:
        raise MarsError(f"{img_dir}: no MMLS image TIFFs (<prefix>patch_R_C.tif, e.g. Image_patch_3_7.tif) found")
    for key, p in images.items():
        if key not in masks:
            raise MarsError(f"{p}: no matching mask at grid position {key[0]}_{key[1]} in {mask_dir}")
    for key, m in masks.items():
        if key not in images:
            raise MarsError(f"{m}: no matching image at grid position {key[0]}_{key[1]} in {img_dir}")
    order = sorted(images, key=lambda k: images[k].name)
    listing = SplitListing(
        pairs=[(images[k], masks[k]) for k in order], positions=order,
        image_prefixes=image_prefixes, mask_prefixes=mask_prefixes, skipped=skipped,
    )
    log.info(listing.describe(split_dir))
    return listing


def find_pairs(split_dir: Path) -> list[tuple[Path, Path]]:
    """The (image, mask) pairs of :func:`scan_split`, in image-name order."""
    return scan_split(split_dir).pairs


NORMALISATIONS = ("train_stats", "none", "robust")


def robust_stretch(images: np.ndarray, p_low: float = 2.0, p_high: float = 98.0) -> np.ndarray:
    """Per patch and channel ``(x - p_low) / (p_high - p_low)`` percentiles: what
    ``Normalisation.robust`` means, with each 128x128 patch as its own scene."""
    lo, hi = np.percentile(images, [p_low, p_high], axis=(-2, -1), keepdims=True)
    return ((images - lo) / np.maximum(hi - lo, 1e-6)).astype(np.float32)


class ArrayDataset(Dataset):
    """In-memory patches: MMLS splits are small (275 patches = 126 MB), so reading every file
    once up front validates the whole split before training starts and makes epochs cheap.

    ``positions[i]`` is the (R, C) grid position of patch i (None where a name carries none):
    what a spatial cross-validation groups patches by. ``description`` says what was read.
    ``normalise``: ``train_stats`` (fixed per-channel mean/std of the published train
    partition), ``none`` (the stored [0, 1] values) or ``robust`` (per-patch 2-98 % stretch).
    """

    def __init__(self, images: np.ndarray, masks: np.ndarray, channels: list[int], names: list[str],
                 positions: Sequence[tuple[int, int] | None] | None = None, description: str = "",
                 normalise: str = "train_stats") -> None:
        x = images[:, channels]
        if normalise == "train_stats":
            mean = np.asarray(TRAIN_MEAN, dtype=np.float32)[channels, None, None]
            std = np.asarray(TRAIN_STD, dtype=np.float32)[channels, None, None]
            x = (x - mean) / std
        elif normalise == "robust":
            x = robust_stretch(x)
        elif normalise != "none":
            raise MarsError(f"data.normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
        self.images = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        self.masks = torch.from_numpy(masks.astype(np.float32))
        self.names = names
        self.positions: list[tuple[int, int] | None] = (
            list(positions) if positions is not None else [grid_position(n) for n in names])
        if len(self.positions) != len(names):
            raise ValueError("one grid position per patch expected")
        self.description = description

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i], "index": torch.tensor(i)}

    def subset(self, indices: Sequence[int], description: str) -> ArrayDataset:
        """The patches ``indices`` (already normalised) as a dataset of their own."""
        out = ArrayDataset.__new__(ArrayDataset)
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        out.images, out.masks = self.images[idx], self.masks[idx]
        out.names = [self.names[i] for i in indices]
        out.positions = [self.positions[i] for i in indices]
        out.description = description
        return out

    @staticmethod
    def concat(parts: Sequence[ArrayDataset], description: str) -> ArrayDataset:
        """Several datasets as one, in the given order (pooling partitions)."""
        out = ArrayDataset.__new__(ArrayDataset)
        out.images = torch.cat([p.images for p in parts])
        out.masks = torch.cat([p.masks for p in parts])
        out.names = [n for p in parts for n in p.names]
        out.positions = [q for p in parts for q in p.positions]
        out.description = description
        return out


def load_split(split_dir: Path) -> tuple[np.ndarray, np.ndarray, list[str], SplitListing]:
    listing = scan_split(split_dir)
    images = np.stack([read_image(p) for p, _ in listing.pairs])
    masks = np.stack([read_mask(m) for _, m in listing.pairs])
    return images, masks, [p.stem for p, _ in listing.pairs], listing


def _train_on(value: str | Sequence[str], bundled: bool) -> list[str]:
    """``data.train_on`` as a list of partitions: ``auto`` is train + val for a real root (the
    recipe is chosen by cross-validation, so no partition is needed for selection) and train
    alone for the bundled sample (its quick start keeps showing validation figures)."""
    if value == "auto":
        return ["train"] if bundled else ["train", "val"]
    items = [value] if isinstance(value, str) else list(value)
    if not items or any(p not in ("train", "val") for p in items) or len(set(items)) != len(items):
        raise MarsError(f"data.train_on must be 'auto' or a list of distinct partitions among train, val "
                        f"(the test partition is for evaluation only), got {value!r}")
    return items


class MMLSSource:
    """Data source ``mmls``. ``root=None`` uses the bundled sample (see :mod:`.sample`).

    ``train_on``: the partitions pooled into the ``train`` split (``auto``: see
    :func:`_train_on`); a pooled partition is no longer offered as a split of its own, so
    nothing trained on is ever reported as held out. ``cv``: a spatial cross-validation fold
    of the pooled partitions (:mod:`mars_landslide.cv`): the splits are then ``train`` (the
    other folds minus the gap) and ``test`` (the held-out fold); a ``test_partition`` on disk
    is not used in that mode.
    """

    def __init__(
        self,
        root: str | None = None,
        channels: str | list[str | int] = "all",
        photometric: bool = True,
        brightness: float = 0.1,
        contrast: float = 0.1,
        train_crop: int | None = None,
        augment: bool = True,
        normalise: str = "train_stats",
        train_on: str | list[str] = "train",
        cv: dict[str, Any] | None = None,
    ) -> None:
        from mars_landslide.cv import CVSpec

        if train_crop is not None and not 8 <= train_crop <= TILE:
            raise MarsError(f"data.train_crop must be between 8 and {TILE}, got {train_crop}")
        if train_crop is not None and not augment:
            raise MarsError("data.train_crop needs data.augment=true (random crops are part of the augmentation)")
        if normalise not in NORMALISATIONS:
            raise MarsError(f"data.normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
        self.train_crop = train_crop
        self.augment = augment
        self.normalise = normalise
        self.channels = resolve_channels(channels)
        self.root = root
        self.photometric = photometric
        self.brightness, self.contrast = brightness, contrast
        self.cv = CVSpec.parse(cv)
        self._cache: dict[str, ArrayDataset] = {}
        if root is None:
            self._partitions = ["train", "val"]
        else:
            base = Path(root).expanduser()
            if not base.is_dir():
                raise MarsError(f"MMLS root {base} is not a directory")
            self._partitions = [s for s, d in SPLIT_DIRS.items() if (base / d).is_dir()]
            if not self._partitions:
                raise MarsError(
                    f"{base}: no MMLS partitions found (expected {', '.join(SPLIT_DIRS.values())})"
                )
            self.base = base
        self.train_on = _train_on(train_on, bundled=root is None)
        if train_on == "auto":
            self.train_on = [p for p in self.train_on if p in self._partitions]
        # A root may hold only the test partition (evaluating a model): then there is no
        # train split, and asking for one names the missing partition.
        self._missing = [p for p in self.train_on if p not in self._partitions]
        has_train = bool(self.train_on) and not self._missing
        if self.cv is not None:
            self._splits = ["train", "test"] if has_train else []
        else:
            self._splits = (["train"] if has_train else []) + [
                p for p in ("val", "test") if p in self._partitions and p not in self.train_on]

    def _where(self) -> str:
        return "the bundled sample" if self.root is None else str(self.root)

    @property
    def band_names(self) -> list[str]:
        return [CHANNEL_NAMES[i] for i in self.channels]

    def splits(self) -> list[str]:
        return list(self._splits)

    def _partition(self, name: str) -> ArrayDataset:
        """One partition as read (train, val or test), normalised; cached."""
        if name not in self._cache:
            if self.root is None:
                from mars_landslide.sample import load_sample

                images, masks, names = load_sample(name)
                ds = ArrayDataset(images, masks, self.channels, names,
                                  description=f"MMLS bundled sample, split {name}: {len(names)} patches",
                                  normalise=self.normalise)
            else:
                split_dir = self.base / SPLIT_DIRS[name]
                images, masks, names, listing = load_split(split_dir)
                ds = ArrayDataset(images, masks, self.channels, names, listing.positions,
                                  listing.describe(split_dir), normalise=self.normalise)
            self._cache[name] = ds
        return self._cache[name]

    def _pool(self) -> ArrayDataset:
        parts = [self._partition(p) for p in self.train_on]
        if len(parts) == 1:
            return parts[0]
        return ArrayDataset.concat(parts, "pooled " + " + ".join(self.train_on) + ": "
                                   + "; ".join(p.description for p in parts))

    def dataset(self, split: str) -> ArrayDataset:
        if split not in self._splits:
            why = ""
            if split == "train" and self._missing:
                why = (f" (data.train_on names partition(s) {', '.join(self._missing)}, which it does not have; "
                       f"it has: {', '.join(self._partitions)})")
            elif split in self.train_on:
                why = f" (partition '{split}' is pooled into training by data.train_on={self.train_on})"
            elif self.cv is not None:
                why = " (data.cv is set: the splits are the training folds and the held-out fold 'test')"
            raise MarsError(f"split '{split}' not available in {self._where()}{why}; "
                            f"available: {', '.join(self._splits)}")
        key = f"split:{split}"
        if key not in self._cache:
            if self.cv is not None:
                from mars_landslide.cv import fold_indices

                pool = self._pool()
                idx = fold_indices(pool.positions, self.cv)
                c = self.cv
                what = (f"spatial CV fold {c.fold}/{c.folds} (blocks of {c.block}x{c.block} patches, gap {c.gap}, "
                        f"seed {c.seed}) of {' + '.join(self.train_on)}: {len(idx['train'])} train, "
                        f"{len(idx['test'])} held-out, {len(idx['gap'])} in the gap")
                log.info("MMLS %s", what)
                self._cache[key] = pool.subset(idx[split], f"{split} of {what}")
            elif split == "train":
                self._cache[key] = self._pool()
            else:
                self._cache[key] = self._partition(split)
        return self._cache[key]

    def input_contract(self) -> InputContract:
        return InputContract(
            kind=TaskKind.SEGMENTATION,
            bands=self.band_names,
            normalisation=self._normalisation(),
            tile_size=TILE,
            channel_indices=self.channels,
            source_format="MMLS 128-page TIFF (tifffile series 128x128x7, float32 in [0,1])",
        )

    def _normalisation(self) -> Normalisation:
        n = len(self.channels)
        if self.normalise == "robust":
            return Normalisation.robust(n)
        if self.normalise == "none":
            return Normalisation(mean=[0.0] * n, std=[1.0] * n)
        return Normalisation(mean=[TRAIN_MEAN[i] for i in self.channels], std=[TRAIN_STD[i] for i in self.channels])

    def train_augmentation(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """None with ``augment=False`` (the paper trains without augmentation)."""
        if not self.augment:
            return None
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
