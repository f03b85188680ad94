"""``icefrag-pairs``: coregistered T1/T2/mask GeoTIFF folders, tiled by ``mars_core.geodata``.

Design decisions and why:

* Files are matched by the part of their names the three folders share: the stem is
  lower-cased, split on ``_ - .`` and date/role tokens (``t1``, ``t2``, ``pre``, ``post``,
  ``mask``, ``label`` ...) are removed; or ``key_regex`` (first group) gives the key.
  A file without its partner is an error, not silently skipped.
* Masks come in several encodings (the published example uses fragment=1, background=255):
  ``label_map`` maps raw values to {0, 1}; any other value is an error naming the file.
* T1, T2 and mask must share CRS (by meaning: a datum named "MARS" in one file and
  "unknown" in another is the same), shape and transform within ``grid_tolerance`` pixels:
  pairs are never resampled silently. The check, the tiling and the reading are the core's
  (``mars_core.geodata``); this module only finds the files and maps the labels.
* ``normalisation: robust`` (the default of ``icefrag.yaml``): each date of each scene is
  stretched by its own ``p_low``/``p_high`` percentiles (nodata and saturated raw values
  excluded), the core's ``robust`` method; the contract stores the method and its
  parameters, so ``mars-core predict icefrag`` applies the same stretch to each input from
  its own statistics, and an 8-, 10- or 12-bit product of one scene gives one model input.
  Nodata and saturation codes come from ``nodata``/``saturated`` or, when a PDS ``.LBL``
  sits beside an image, from its ``CORE_NULL`` and ``*_SATURATION`` keywords (see
  ``pds.py``); they are recorded in the contract. Nothing is normalised per tile.
* ``normalisation: fixed`` (what models saved before round 2 hold): ``(DN - dn_min) /
  (dn_max - dn_min)`` with ``dn_max = 2**bit_depth - 1`` unless given; a DN above
  ``dn_max`` is an error (it would mean the configuration does not fit the product).
* The split is by scene (or by region with ``group_regex``): 256-px tiles with 50 % overlap
  share pixels with their neighbours, so a split by tile would leak test pixels into
  training. ``split`` may also list scene keys explicitly. Only TRAINING tiles overlap
  (``overlap``); validation, test and ``all`` (every scene) are cut into non-overlapping
  tiles that score every pixel exactly once, so a fragment is not counted once per
  overlapping tile.
* ``positive_fraction`` (optional) over-samples TRAINING tiles that contain change:
  detached fragments cover well under 1 % of a scarp, so with uniform tile sampling a
  short run sees almost only background and the optimiser settles on "no change". The
  engine draws tiles uniformly (no sampler hook), so the train split's tile list itself
  is re-weighted: tiles holding at least one fragment pixel are repeated, deterministically,
  until about that fraction of the list holds change (never lower than the natural
  fraction; negatives are all kept, so an epoch gets longer). Validation and test tiles
  are never re-weighted: their metrics stay those of the natural distribution.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from mars_core.data import InputContract, Normalisation
from mars_core.errors import MarsError
from mars_core.geodata import GeoScene, RasterLabels, TileDataset, TimeSeries, scene_split, scene_windows
from mars_core.geodata.labels import BoundLabels
from mars_core.tasks import TaskKind
from mars_icefrag.augment import build_augmentation, validate_augment
from mars_icefrag.data.pds import label_for, read_label

ROLE_TOKENS = {"t1", "t2", "pre", "post", "before", "after", "mask", "masks", "label", "labels", "gt", "ref",
               "reference", "date1", "date2", "img1", "img2", "image1", "image2"}
RASTER_SUFFIXES = (".tif", ".tiff")
SPLITS = ("train", "val", "test")
#: Every scene, whole, in non-overlapping tiles (``mars-core evaluate --split all``).
ALL = "all"


def sample_root() -> Path:
    """The bundled SYNTHETIC sample (see ``sample/README.md``)."""
    return Path(str(resources.files("mars_icefrag") / "sample"))


def scene_key(name: str, key_regex: str | None = None) -> str:
    stem = Path(name).name
    for suf in RASTER_SUFFIXES:
        if stem.lower().endswith(suf):
            stem = stem[: -len(suf)]
    if key_regex:
        m = re.search(key_regex, stem)
        if not m:
            raise MarsError(f"file name '{name}' does not match key_regex {key_regex!r}")
        return m.group(1) if m.groups() else m.group(0)
    tokens = [t for t in re.split(r"[_\-.\s]+", stem.lower()) if t and t not in ROLE_TOKENS]
    return "_".join(tokens)


def _index(folder: Path, key_regex: str | None) -> dict[str, Path]:
    if not folder.is_dir():
        raise MarsError(f"folder not found: {folder}")
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() not in RASTER_SUFFIXES:
            continue
        k = scene_key(p.name, key_regex)
        if k in out:
            raise MarsError(f"two files in {folder} have the same scene key '{k}': {out[k].name}, {p.name}")
        out[k] = p
    return out


@dataclass(frozen=True)
class Scene:
    key: str
    t1: Path
    t2: Path
    mask: Path | None
    height: int
    width: int
    series: TimeSeries
    labels: BoundLabels | None


def oversample_positive(items: Sequence[Any], positive: Sequence[bool], fraction: float) -> list[Any]:
    """``items`` with the positive ones repeated so that about ``fraction`` of the list is positive.

    Deterministic: every positive appears ``k`` or ``k + 1`` times, the extra copies going to
    positives spread evenly over the list (no random state). Negatives are kept once each.
    If the natural positive fraction is already >= ``fraction`` (or there is no negative),
    ``items`` is returned unchanged.
    """
    if not 0 < fraction < 1:
        raise ValueError("positive_fraction must be in (0, 1)")
    if len(items) != len(positive):
        raise ValueError("items and positive differ in length")
    pos = [i for i, p in enumerate(positive) if p]
    n_pos, n_neg = len(pos), len(items) - len(pos)
    if n_pos == 0:
        raise MarsError("positive_fraction is set but no training tile contains change (mask all background); "
                        "check label_map and the masks, or drop positive_fraction")
    target = int(round(fraction * n_neg / (1 - fraction)))  # positive entries wanted next to n_neg negatives
    if target <= n_pos:
        return list(items)
    reps, extra = divmod(target, n_pos)
    counts = dict.fromkeys(pos, reps)
    for j in range(extra):  # evenly spread extra copies
        counts[pos[(j * n_pos) // extra]] += 1
    out: list[Any] = []
    for i, item in enumerate(items):
        out.extend([item] * counts.get(i, 1))
    return out


class PairTiles(TileDataset):
    """Tiles of a list of scenes (``mars_core.geodata.TileDataset``): ``image1``, ``image2``,
    ``mask`` (1 fragment, 0 background, 255 ignored). ``items`` are the tile windows.

    ``positive_fraction`` re-weights the tile list (training only, see the module docstring).
    """

    def __init__(self, source: IcefragPairs, scenes: Sequence[Scene], overlap: float,
                 positive_fraction: float | None = None) -> None:
        self.source = source
        windows = [w for si, s in enumerate(scenes)
                   for w in scene_windows(si, (s.height, s.width), source.tile, overlap)]
        super().__init__([s.series for s in scenes], windows, [s.labels for s in scenes],
                         source.normalisation(), raw_check=source.check_raw, missing_labels="background")
        self.n_unique = len(self.windows)
        if positive_fraction is not None:
            self.windows = oversample_positive(self.windows, self.tile_has_change(), positive_fraction)

    @property
    def items(self) -> list[Any]:
        return self.windows

    def tile_has_change(self) -> list[bool]:
        """For each tile of ``items``: does it own a fragment pixel?"""
        return self.has_class(1)


class IcefragPairs:
    """The ``icefrag-pairs`` data source (see the module docstring)."""

    def __init__(self, root: str | None = None, t1_dir: str = "t1", t2_dir: str = "t2", mask_dir: str = "mask",
                 label_map: dict[int, int] | None = None, bit_depth: int = 16, dn_min: float = 0.0,
                 dn_max: float | None = None, tile: int = 256, overlap: float = 0.5,
                 split: dict[str, list[str]] | Sequence[float] = (0.8, 0.1, 0.1), group_regex: str | None = None,
                 key_regex: str | None = None, split_seed: int = 0, augment: Sequence[str] | None = None,
                 augment_params: dict[str, Any] | None = None, grid_tolerance: float = 0.01,
                 band: str = "hirise_red", min_component_px: int = 5,
                 positive_fraction: float | None = None, normalisation: str = "fixed",
                 p_low: float = 2.0, p_high: float = 98.0, saturated: Sequence[float] | None = None,
                 nodata: float | None = None, pds_labels: bool = True) -> None:
        if normalisation not in ("fixed", "robust"):
            raise MarsError(f"data.normalisation must be 'fixed' or 'robust', not {normalisation!r}")
        if not 0 <= float(p_low) < float(p_high) <= 100:
            raise MarsError("data.p_low and data.p_high must satisfy 0 <= p_low < p_high <= 100")
        self.method = normalisation
        self.p_low, self.p_high = float(p_low), float(p_high)
        self.saturated: set[float] = {float(v) for v in (saturated or [])}
        self.nodata = None if nodata is None else float(nodata)
        self.pds_labels = bool(pds_labels)
        if not 1 <= bit_depth <= 16:
            raise ValueError("bit_depth must be between 1 and 16")
        if not 0 <= overlap < 1:
            raise ValueError("overlap must be in [0, 1)")
        if tile % 32:
            raise ValueError("tile must be a multiple of 32 (the ResNet-50 encoder downsamples 32x)")
        if positive_fraction is not None and not 0 < float(positive_fraction) < 1:
            raise ValueError("positive_fraction must be null or in (0, 1), e.g. 0.5")
        self.positive_fraction = None if positive_fraction is None else float(positive_fraction)
        self.root = Path(root) if root else sample_root()
        self.synthetic_sample = root is None
        self.label_map = {int(k): int(v) for k, v in (label_map or {0: 0, 1: 1}).items()}
        if set(self.label_map.values()) - {0, 1}:
            raise ValueError("label_map values must be 0 (background) or 1 (fragment)")
        self.dn_min = float(dn_min)
        self.dn_max = float(dn_max) if dn_max is not None else float(2**bit_depth - 1)
        if self.dn_max <= self.dn_min:
            raise ValueError("dn_max must be larger than dn_min")
        self.tile, self.overlap = int(tile), float(overlap)
        self.augment = validate_augment(augment)
        self.augment_params = dict(augment_params or {})
        self.grid_tolerance = grid_tolerance
        self.band = band
        self.min_component_px = min_component_px
        self.key_regex, self.group_regex = key_regex, group_regex
        self.scenes = self._scan(t1_dir, t2_dir, mask_dir)
        self.assignment = self._split(split, split_seed)

    # -- discovery -------------------------------------------------------------------------
    def _scan(self, t1_dir: str, t2_dir: str, mask_dir: str) -> list[Scene]:
        t1 = _index(self.root / t1_dir, self.key_regex)
        t2 = _index(self.root / t2_dir, self.key_regex)
        mask_folder = self.root / mask_dir
        masks = _index(mask_folder, self.key_regex) if mask_folder.is_dir() else {}
        lonely = sorted(set(t1) ^ set(t2))
        if lonely:
            raise MarsError(f"scene(s) without a T1/T2 partner under {self.root}: {', '.join(lonely)} "
                            f"(T1 keys: {', '.join(sorted(t1)) or 'none'}; T2 keys: {', '.join(sorted(t2)) or 'none'})")
        if not t1:
            raise MarsError(f"no GeoTIFFs found in {self.root / t1_dir}")
        extra = sorted(set(masks) - set(t1))
        if extra:
            raise MarsError(f"mask(s) without an image pair: {', '.join(extra)}")
        if self.pds_labels:
            self._read_pds_labels([*t1.values(), *t2.values()])
        scenes = []
        for k in sorted(t1):
            dates = [GeoScene.from_files({role: path}, bands=[self.band], key=k, nodata=self.nodata,
                                         grid_tolerance=self.grid_tolerance)
                     for role, path in (("t1", t1[k]), ("t2", t2[k]))]
            series = TimeSeries.of(dates, key=k, grid_tolerance=self.grid_tolerance, sort_by_time=False)
            labels = None
            if k in masks:
                spec = RasterLabels(masks[k], label_map=self.label_map, grid_tolerance=self.grid_tolerance)
                labels = spec.bind(series)
            h, w = series.shape
            scenes.append(Scene(k, t1[k], t2[k], masks.get(k), h, w, series, labels))
        return scenes

    def _read_pds_labels(self, images: Sequence[Path]) -> None:
        """Take null and saturation codes from PDS labels beside the images (if any).

        Every label's saturation codes join ``saturated`` (a code is excluded from the
        percentiles of every scene: the contract holds one list). Labels that disagree on
        the null value are an error: the contract holds one nodata value."""
        nulls: dict[float, Path] = {}
        for image in images:
            label = label_for(image)
            if label is None:
                continue
            values = read_label(label)
            self.saturated.update(values.saturated)
            if values.null is not None:
                nulls.setdefault(values.null, label)
        if len(nulls) > 1:
            found = ", ".join(f"{v:g} ({p.name})" for v, p in nulls.items())
            raise MarsError(f"PDS labels disagree on CORE_NULL: {found}")
        if nulls:
            null = next(iter(nulls))
            if self.nodata is not None and self.nodata != null:
                raise MarsError(f"data.nodata {self.nodata:g} differs from CORE_NULL {null:g} of {nulls[null].name}")
            self.nodata = null

    def _split(self, split: Any, seed: int) -> dict[str, list[Scene]]:
        by_key = {s.key: s for s in self.scenes}
        if not isinstance(split, dict):
            split = [float(f) for f in split]
        keys = scene_split(list(by_key), split, seed, self.group_regex)
        return {name: [by_key[k] for k in ks] for name, ks in keys.items()}

    # -- DataSource protocol ---------------------------------------------------------------
    def splits(self) -> list[str]:
        return [*(s for s in SPLITS if self.assignment.get(s)), ALL]

    def split_keys(self) -> dict[str, list[str]]:
        return {k: [s.key for s in v] for k, v in self.assignment.items()}

    def dataset(self, split: str) -> Dataset:
        if split not in self.splits():
            raise MarsError(f"split '{split}' is empty or unknown; available: {', '.join(self.splits())}")
        if split == ALL:
            return PairTiles(self, self.scenes, overlap=0.0)
        # Only training tiles overlap and are re-weighted; val/test keep the natural
        # distribution and score every pixel once.
        if split == "train":
            return PairTiles(self, self.assignment[split], self.overlap, self.positive_fraction)
        return PairTiles(self, self.assignment[split], overlap=0.0)

    def normalisation(self) -> Normalisation:
        if self.method == "robust":
            return Normalisation.robust(1, p_low=self.p_low, p_high=self.p_high, saturated=sorted(self.saturated))
        return Normalisation(mean=[self.dn_min], std=[self.dn_max - self.dn_min])

    def input_contract(self) -> InputContract:
        return InputContract(kind=TaskKind.CHANGE_DETECTION, bands=[self.band], n_inputs=2,
                             normalisation=self.normalisation(),
                             tile_size=self.tile, classes=["no-change", "detached-fragment"],
                             min_component_px=self.min_component_px, nodata=self.nodata)

    def train_augmentation(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        return build_augmentation(self.augment, **self.augment_params)

    # -- value handling ----------------------------------------------------------------------
    def check_raw(self, date: GeoScene, raw: np.ndarray) -> None:
        """DN above ``dn_max`` means the configuration does not fit the product: an error."""
        if self.method != "fixed":
            return
        top = float(raw.max()) if raw.size else 0.0
        if top > self.dn_max:
            raise MarsError(f"{date.files[0].path.name} has DN {top:g} above dn_max {self.dn_max:g}; set bit_depth or "
                            "dn_max to match the product (values are never rescaled per tile)")


def icefrag_pairs(root: str | None = None, **params: Any) -> IcefragPairs:
    """Factory registered as ``icefrag-pairs``; ``root=None`` is the bundled SYNTHETIC sample."""
    return IcefragPairs(root, **params)
