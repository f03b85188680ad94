"""``hirise-chips``: a folder of grayscale HiRISE chips with ``labels.csv``, split by observation.

Layout: ``labels.csv`` (``file, observation, latitude, landmark_class, ice``) and
``chips/<file>``. Why the choices:

* Splits are by observation: the augmented copies of a landmark (``-r90 -fh -brt`` ...)
  and all chips of one observation are near-duplicates, so a split by chip would leak.
  The landmark of a file (its name without the copy suffix) must belong to one observation;
  the loader checks it. Observations are dealt to splits separately per class (by their
  majority label) so that every split holds both classes when there are enough.
* ``folds``/``fold``: k-fold cross-validation grouped the same way (fold ``fold`` is the
  test split, the next one the validation split, the rest train), for the benchmark.
  ``fold_val: false`` pools the next fold into training instead (no validation split): the
  recipe keeps its last epoch and decides at p = 0.5, so a validation fold only costs
  training data (BENCHMARK.md).
* ``--split all`` evaluates every chip of the folder (the withheld observations come in
  this layout).
* Each chip is read raw, its hot pixels repaired (:mod:`mars_icepatch.hotpixels`), stretched
  and resampled to ``input_size``. The stretch (``chip_stretch``) must match what a scene
  chunk gets at prediction: the contract's robust normalisation, 2-98 % of the WHOLE scene's
  valid pixels mapped to [0, 1], so that a chunk keeps its brightness relative to its scene.
  The chips are crops of HiRISE browse images, which are already stretched per observation
  into 8 bits, so ``browse`` (default) maps DN/255, the chip's brightness in its scene;
  ``percentile`` stretches each chip on its own (2-98 % of its non-zero pixels), which
  throws away that relative brightness (a first benchmark fold with it reached a balanced
  accuracy of 0.51 after 4 epochs: BENCHMARK.md).
* ``train_target: landmark`` trains on the ``landmark_class`` column instead of ``ice``
  (each landmark is a sub-class of ice or no ice, announced in the input contract; the
  model returns the two classes' logits in evaluation). Why offered: "no ice" is a mix of
  craters, streaks, dark dunes and other terrain and "ice" of three unlike landforms, and
  naming them is more supervision; validation, test and every evaluation still score ice
  against no ice. Not the default: in 5-fold CV on the shared chips it raised the false
  alarms under the test-time scales (BENCHMARK.md, round 7).
* Every user mistake in ``labels.csv`` (missing columns or files, unknown labels, a landmark
  in two observations, a non-grayscale chip) is a one-line :class:`MarsError`.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from mars_core.data import InputContract, Normalisation
from mars_core.errors import MarsError
from mars_core.tasks import TaskKind
from mars_icepatch.augment import ChipAugmentation, augmentation_from_config
from mars_icepatch.hotpixels import HotPixelParams, repair_hot_pixels
from mars_icepatch.resample import resample_square

CLASSES = ["no_ice", "ice"]
COLUMNS = ("file", "observation", "latitude", "landmark_class", "ice")
SPLITS = ("train", "val", "test")
ALL = "all"
COPY_SUFFIX = re.compile(r"-(r90|r180|r270|fh|fv|brt)$")
P_LOW, P_HIGH = 2.0, 98.0
#: RDR null value: never a valid pixel, excluded from the stretch's percentiles.
NULL = 0


def sample_root() -> Path:
    """The bundled sample of real chips (see ``sample/NOTICE.md``)."""
    return Path(str(resources.files("mars_icepatch") / "sample"))


def normalisation() -> Normalisation:
    """Robust per-image stretch; 0 (RDR null) is left out of the percentiles."""
    return Normalisation.robust(1, p_low=P_LOW, p_high=P_HIGH, saturated=[NULL])


@dataclass(frozen=True)
class Chip:
    file: str
    path: Path
    observation: str
    latitude: float
    landmark_class: str
    ice: int

    @property
    def landmark(self) -> str:
        return COPY_SUFFIX.sub("", Path(self.file).stem)


def read_labels(root: str | Path) -> list[Chip]:
    """Parse and check ``root/labels.csv`` (every file present, ice in {0, 1})."""
    root = Path(root)
    table = root / "labels.csv"
    if not table.is_file():
        raise MarsError(f"{root}: no labels.csv (expected columns {', '.join(COLUMNS)})")
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MarsError(f"{table}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise MarsError(f"{table}: no chips listed")
    chips: list[Chip] = []
    for n, row in enumerate(rows, start=2):
        label = (row["ice"] or "").strip()
        if label not in ("0", "1"):
            raise MarsError(f"{table} line {n}: unknown label ice={label!r} for {row['file']} (expected 0 or 1)")
        path = root / "chips" / row["file"]
        if not path.is_file():
            raise MarsError(f"{table} line {n}: {row['file']} is not in {root / 'chips'}")
        try:
            lat = float(row["latitude"])
        except ValueError:
            raise MarsError(f"{table} line {n}: latitude {row['latitude']!r} is not a number") from None
        chips.append(Chip(row["file"], path, row["observation"].strip(), lat, row["landmark_class"], int(label)))
    owner: dict[str, str] = {}
    for c in chips:
        if owner.setdefault(c.landmark, c.observation) != c.observation:
            raise MarsError(f"{table}: landmark {c.landmark} appears in observations {owner[c.landmark]} "
                            f"and {c.observation}; a split by observation would leak it")
    return chips


def read_chip(path: Path) -> np.ndarray:
    """One chip as a 2-D array in its own dtype; a colour image is refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode not in ("L", "I;16", "I;16B", "I;16L", "I", "F"):
                raise MarsError(f"{path}: not a grayscale image (mode {im.mode}); icepatch takes one band")
            arr = np.array(im)
    except (UnidentifiedImageError, OSError) as exc:
        raise MarsError(f"{path}: cannot be read as an image ({exc})") from None
    if arr.ndim != 2:
        raise MarsError(f"{path}: not a grayscale image (shape {arr.shape})")
    return arr


STRETCHES = ("browse", "percentile")


def stretch(raw: np.ndarray, mode: str = "browse") -> tuple[np.ndarray, np.ndarray]:
    """(normalised float32, valid): ``browse`` = DN / 255 (8-bit browse crops, already
    stretched per observation), ``percentile`` = this chip's own 2-98 % stretch."""
    valid = raw != NULL
    if mode == "browse":
        if raw.dtype != np.uint8:
            raise MarsError(f"chip_stretch 'browse' takes 8-bit browse chips, got {raw.dtype}; use 'percentile'")
        x = raw.astype(np.float32) / np.float32(255.0)
        x[~valid] = 0.0
        return x, valid
    values = raw[valid]
    if values.size == 0:
        return np.zeros(raw.shape, np.float32), valid
    lo, hi = np.percentile(values.astype(np.float64), [P_LOW, P_HIGH])
    x = (raw.astype(np.float32) - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    x[~valid] = 0.0
    return x, valid


def chip_tensor(raw: np.ndarray, input_size: int, hot_pixels: HotPixelParams | None,
                mode: str = "browse") -> tuple[torch.Tensor, int]:
    """Model input [1, S, S] from a raw chip (repaired, stretched, resampled) and the number
    of hot pixels repaired. ``raw`` is not modified."""
    img = raw.copy()
    n_hot = 0
    if hot_pixels is not None:
        n_hot = len(repair_hot_pixels(img, img != NULL, hot_pixels))
    x, _ = stretch(img, mode)
    return resample_square(torch.from_numpy(x)[None, None], input_size)[0], n_hot


class ChipDataset(Dataset):
    """Chips as model inputs. ``cache``: keep each prepared tensor after its first read (a
    chip's input is fixed: augmentation happens later, on the batch), so later epochs skip
    decoding, hot-pixel repair and resampling (1,503 chips at 128 px: 99 MB)."""

    def __init__(self, chips: list[Chip], input_size: int, hot_pixels: HotPixelParams | None,
                 mode: str = "browse", cache: bool = False, labels: dict[str, int] | None = None) -> None:
        self.chips, self.input_size, self.hot_pixels, self.mode = chips, input_size, hot_pixels, mode
        #: landmark_class -> training label (``train_target: landmark``); None: the ice label.
        self.labels = labels
        self._cache: dict[Path, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.chips)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.chips[i]
        x = self._cache.get(c.path) if self._cache is not None else None
        if x is None:
            x, _ = chip_tensor(read_chip(c.path), self.input_size, self.hot_pixels, self.mode)
            if self._cache is not None:
                self._cache[c.path] = x
        label = c.ice if self.labels is None else self.labels[c.landmark_class]
        return {"image": x, "label": torch.tensor(label, dtype=torch.long)}


BALANCES = ("none", "oversample")
TRAIN_TARGETS = ("ice", "landmark")


def landmark_subclasses(chips: list[Chip]) -> dict[str, list[str]]:
    """The landmark classes of each class (sorted), for ``train_target: landmark``; a
    landmark labelled both ice and no ice, or a class without landmarks, is refused."""
    kinds: dict[str, set[int]] = {}
    for c in chips:
        if not c.landmark_class.strip():
            raise MarsError(f"{c.path.name}: empty landmark_class; train_target 'landmark' needs one per chip")
        kinds.setdefault(c.landmark_class, set()).add(c.ice)
    mixed = sorted(k for k, v in kinds.items() if len(v) > 1)
    if mixed:
        raise MarsError(f"landmark_class {mixed[0]!r} is labelled both ice and no ice; train_target 'landmark' "
                        "needs each landmark on one side")
    out = {cls: sorted(k for k, v in kinds.items() if v == {i}) for i, cls in enumerate(CLASSES)}
    if not all(out.values()):
        raise MarsError(f"train_target 'landmark' needs landmarks of both classes, got {out}")
    return out


def oversample(chips: list[Chip]) -> list[Chip]:
    """The chips with the rarer class repeated round(n_common / n_rare) times, so that an
    epoch holds about as many ice chips as others. Why: ice is 18 % of the shared chips; with
    plain sampling the model's probabilities lean to "no ice" and the 0.5 cut misses most ice
    (BENCHMARK.md, first CV run). Repeats are exact copies: ``data.augment`` varies them."""
    n1 = sum(c.ice for c in chips)
    n0 = len(chips) - n1
    if n0 == 0 or n1 == 0:
        return list(chips)
    rare = 1 if n1 < n0 else 0
    factor = round(max(n0, n1) / min(n0, n1))
    return [c for c in chips for _ in range(factor if c.ice == rare else 1)]


def observation_labels(chips: list[Chip]) -> dict[str, int]:
    """Majority ice label of each observation (for stratified dealing)."""
    votes: dict[str, list[int]] = {}
    for c in chips:
        votes.setdefault(c.observation, []).append(c.ice)
    return {o: int(np.mean(v) >= 0.5) for o, v in votes.items()}


def observation_folds(chips: list[Chip], k: int, seed: int) -> dict[str, int]:
    """Fold id per observation: per class, shuffled observations dealt round-robin, largest
    first, so folds get similar numbers of chips of each class."""
    labels = observation_labels(chips)
    sizes: dict[str, int] = {}
    for c in chips:
        sizes[c.observation] = sizes.get(c.observation, 0) + 1
    rng = np.random.default_rng(seed)
    fold: dict[str, int] = {}
    for cls in (0, 1):
        obs = [o for o in sorted(labels) if labels[o] == cls]
        rng.shuffle(obs)
        load = [0] * k
        for o in sorted(obs, key=lambda o: -sizes[o]):
            f = int(np.argmin(load))
            fold[o] = f
            load[f] += sizes[o]
    return fold


class HiriseChips:
    """The ``hirise-chips`` data source (see the module docstring)."""

    def __init__(self, root: str | None = None, split: list[float] | dict[str, list[str]] | None = None,
                 folds: int | None = None, fold: int = 0, seed: int = 0, input_size: int = 227,
                 hot_pixels: dict[str, Any] | bool | None = True, chip_stretch: str = "browse",
                 balance: str = "none", augment: Any = None, cache: bool = True,
                 fold_val: bool = True, train_target: str = "ice") -> None:
        self.fold_val = bool(fold_val)
        if train_target not in TRAIN_TARGETS:
            raise MarsError(f"data.train_target must be one of {', '.join(TRAIN_TARGETS)}, got {train_target!r}")
        if chip_stretch not in STRETCHES:
            raise MarsError(f"data.chip_stretch must be one of {', '.join(STRETCHES)}, got {chip_stretch!r}")
        if balance not in BALANCES:
            raise MarsError(f"data.balance must be one of {', '.join(BALANCES)}, got {balance!r}")
        self.chip_stretch, self.balance, self.cache = chip_stretch, balance, bool(cache)
        self.augmentation = augmentation_from_config(augment)
        self.root = Path(root) if root is not None else sample_root()
        self.chips = read_labels(self.root)
        # Only training needs the landmarks: a folder that cannot give them (say, withheld
        # observations of one class) is still evaluated, on ice, by a landmark-trained model.
        self.subclasses: dict[str, list[str]] = {}
        self.subclass_error: MarsError | None = None
        if train_target == "landmark":
            try:
                self.subclasses = landmark_subclasses(self.chips)
            except MarsError as exc:
                self.subclass_error = exc
        self.input_size = int(input_size)
        if hot_pixels is False or hot_pixels is None:
            self.hot_pixels: HotPixelParams | None = None
        else:
            self.hot_pixels = HotPixelParams.from_dict({} if hot_pixels is True else hot_pixels)
        # A model trained with folds or an explicit split is evaluated with those settings on
        # other folders (``evaluate --split all`` on withheld observations), where they may not
        # fit: then only "all" is offered, and the reason is given when another split is asked.
        self.split_error: MarsError | None = None
        try:
            self.assignment = self._assign(split if split is not None else [0.6, 0.2, 0.2], folds, fold, seed)
        except MarsError as exc:
            self.split_error, self.assignment = exc, {s: [] for s in SPLITS}
            print(f"warning: {exc}; only split 'all' is available in {self.root}", file=sys.stderr)

    def _assign(self, split: Any, folds: int | None, fold: int, seed: int) -> dict[str, list[Chip]]:
        obs = sorted({c.observation for c in self.chips})
        if isinstance(split, dict):
            unknown = sorted(set(split) - set(SPLITS))
            if unknown:
                raise MarsError(f"data.split: unknown split(s) {', '.join(unknown)}; allowed: {', '.join(SPLITS)}")
            where = {o: s for s, names in split.items() for o in names}
            missing = sorted(set(where) - set(obs))
            if missing:
                raise MarsError(f"data.split names observations not in {self.root}: {', '.join(missing[:5])}")
        elif folds is not None:
            if not 3 <= folds <= len(obs) or not 0 <= fold < folds:
                raise MarsError(f"data.folds must be in [3, {len(obs)}] and data.fold in [0, folds), "
                                f"got {folds}, {fold}")
            fid = observation_folds(self.chips, folds, seed)
            val = (fold + 1) % folds if self.fold_val else None
            where = {o: "test" if f == fold else "val" if f == val else "train" for o, f in fid.items()}
        else:
            fr = [float(v) for v in split]
            if len(fr) != 3 or any(v < 0 for v in fr) or sum(fr) <= 0:
                raise MarsError(f"data.split must be three fractions (train, val, test), got {split}")
            where = {}
            labels = observation_labels(self.chips)
            rng = np.random.default_rng(seed)
            for cls in (0, 1):
                group = [o for o in obs if labels[o] == cls]
                rng.shuffle(group)
                cuts = np.round(np.cumsum(fr) / sum(fr) * len(group)).astype(int)
                for i, o in enumerate(group):
                    where[o] = SPLITS[int(np.searchsorted(cuts, i, side="right"))]
        return {s: [c for c in self.chips if where.get(c.observation) == s] for s in SPLITS}

    def splits(self) -> list[str]:
        return [*(s for s in SPLITS if self.assignment[s]), ALL]

    def split_chips(self, split: str) -> list[Chip]:
        if split == ALL:
            return list(self.chips)
        if self.split_error is not None:
            raise self.split_error
        if split not in self.splits():
            raise MarsError(f"split '{split}' is empty or unknown; available: {', '.join(self.splits())}")
        return self.assignment[split]

    def dataset(self, split: str) -> Dataset:
        chips = self.split_chips(split)
        if split == "train" and self.subclass_error is not None:
            raise self.subclass_error
        if split == "train" and self.balance == "oversample":
            chips = oversample(chips)
        labels = None
        if split == "train" and self.subclasses:  # sub-class i of the contract's flattened list
            labels = {k: i for i, k in enumerate(k for cls in CLASSES for k in self.subclasses[cls])}
        return ChipDataset(chips, self.input_size, self.hot_pixels, self.chip_stretch, cache=self.cache, labels=labels)

    def class_balance(self) -> dict[str, dict[str, int]]:
        """Chips and observations per class in every split (reported by ``icepatch balance``)."""
        out = {}
        for s in (*SPLITS, ALL):
            cs = self.chips if s == ALL else self.assignment[s]
            out[s] = {"chips": len(cs), "ice": sum(c.ice for c in cs), "no_ice": sum(1 - c.ice for c in cs),
                      "observations": len({c.observation for c in cs})}
        return out

    def input_contract(self) -> InputContract:
        return InputContract(kind=TaskKind.CLASSIFICATION, bands=["gray"], normalisation=normalisation(),
                             tile_size=self.input_size, nodata=float(NULL), classes=list(CLASSES),
                             subclasses=self.subclasses)

    def train_augmentation(self) -> ChipAugmentation | None:
        """``data.augment`` (:mod:`mars_icepatch.augment`), on top of the folder's own fixed
        rotated, flipped and brightened copies; None when not asked for."""
        return self.augmentation
