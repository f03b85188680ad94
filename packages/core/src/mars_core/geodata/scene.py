"""Scenes: named bands stacked from one or more GeoTIFFs of one date, on one grid.

A :class:`GeoScene` opens nothing until a window is read (datasets are opened per read,
so a ``DataLoader`` worker never inherits an open GDAL handle). Its files are checked to
share one grid when it is built (:func:`mars_core.geodata.grid.check_same_grid`).
A :class:`TimeSeries` is T scenes of one site on one grid, each with its acquisition time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.windows import Window

from mars_core.data import Normalisation
from mars_core.errors import MarsError
from mars_core.geodata.grid import check_same_grid
from mars_core.geodata.normalise import percentiles

PathLike = str | Path


@dataclass(frozen=True)
class BandFile:
    """One file of a scene: which of its bands are used, under which names."""

    key: str
    path: Path
    names: tuple[str, ...]
    indexes: tuple[int, ...]  # 1-based band indexes in the file
    nodata: float | None  # override; None = the file's own nodata (if any)


def parse_time(value: dt.datetime | dt.date | str | None, path: PathLike | None = None,
               pattern: str | None = None, fmt: str | None = None) -> dt.datetime | None:
    """An acquisition time: given (datetime, date or ISO string), or parsed from ``path``'s
    name with ``pattern`` (first group, or whole match) read with ``fmt`` (strptime)."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            raise MarsError(f"acquisition time {value!r} is not an ISO date/time (e.g. 2000-10-30)") from None
    if pattern is None or path is None:
        return None
    m = re.search(pattern, Path(path).name)
    if not m:
        raise MarsError(f"file name {Path(path).name!r} does not match time pattern {pattern!r}")
    text = m.group(1) if m.groups() else m.group(0)
    try:
        return dt.datetime.strptime(text, fmt) if fmt else dt.datetime.fromisoformat(text)
    except ValueError:
        raise MarsError(f"{text!r} from {Path(path).name} is not a date in format {fmt or 'ISO'}") from None


def _open(path: Path, stack: ExitStack) -> Any:
    if not path.is_file():
        raise MarsError(f"raster not found: {path}")
    try:
        return stack.enter_context(rasterio.open(path))
    except RasterioError as exc:
        raise MarsError(f"{path}: cannot be opened as a raster ({' '.join(str(exc).split())})") from None


@dataclass
class GeoScene:
    """Named bands of one date (see the module docstring). Build with :meth:`from_files`."""

    files: tuple[BandFile, ...]
    height: int
    width: int
    crs: Any
    transform: Any
    key: str = ""
    time: dt.datetime | None = None
    _norm_cache: dict[str, Normalisation] = field(default_factory=dict, repr=False)

    @classmethod
    def from_files(cls, files: Mapping[str, PathLike] | Sequence[PathLike] | PathLike,
                   bands: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
                   order: Sequence[str] | None = None, nodata: Mapping[str, float] | float | None = None,
                   key: str | None = None, time: dt.datetime | dt.date | str | None = None,
                   time_pattern: str | None = None, time_format: str | None = None,
                   grid_tolerance: float = 0.01) -> GeoScene:
        """Stack ``files`` (``{file key: path}``, a list, or one path) into named bands.

        ``bands``: per file key the names of its bands in file order (``{"rgb": ["red",
        "green", "blue"], "nir": ["nir"]}``), or one flat list consumed file by file, or
        None (``<file key>`` for a one-band file, ``<file key>_<i>`` otherwise; ``band1``,
        ``band2`` ... when the files are not named). ``order``
        picks and orders the stacked bands by name (default: file order). ``nodata``
        overrides the files' nodata (one value, or per file key). The acquisition ``time`` is
        given, or parsed from the first file's name with ``time_pattern``/``time_format``
        (see :func:`parse_time`), or unknown (None).
        """
        if isinstance(files, (str, Path)):
            files = [files]
        items = list(files.items()) if isinstance(files, Mapping) else [(Path(p).stem, p) for p in files]
        if not items:
            raise MarsError("a scene needs at least one raster file")
        flat = list(bands) if bands is not None and not isinstance(bands, Mapping) else None
        out: list[BandFile] = []
        with ExitStack() as stack:
            first_path, first = None, None
            for fkey, p in items:
                path = Path(p)
                ds = _open(path, stack)
                if first is None:
                    first_path, first = path, ds
                else:
                    check_same_grid(first_path, first, path, ds, grid_tolerance)
                if isinstance(bands, Mapping):
                    if fkey not in bands:
                        raise MarsError(f"bands names no band for file '{fkey}' ({path.name}); given for: "
                                        f"{', '.join(bands)}")
                    names = list(bands[fkey])
                elif flat is not None:
                    names, flat = flat[: ds.count], flat[ds.count :]
                elif isinstance(files, Mapping):
                    names = [fkey] if ds.count == 1 else [f"{fkey}_{i + 1}" for i in range(ds.count)]
                else:  # unnamed files: band1, band2 ... across the files, the same for every date
                    n0 = sum(len(f.names) for f in out)
                    names = [f"band{n0 + i + 1}" for i in range(ds.count)]
                if len(names) != ds.count:
                    raise MarsError(f"{path.name} has {ds.count} band(s) but {len(names)} name(s) were given "
                                    f"({', '.join(names) or 'none'})")
                nd = nodata.get(fkey) if isinstance(nodata, Mapping) else nodata
                out.append(BandFile(fkey, path, tuple(names), tuple(range(1, ds.count + 1)),
                                    None if nd is None else float(nd)))
            if flat:
                raise MarsError(f"more band names than bands in the files: {', '.join(flat)} left over")
            all_names = [n for f in out for n in f.names]
            dupes = sorted({n for n in all_names if all_names.count(n) > 1})
            if dupes:
                raise MarsError(f"band name(s) used twice in one scene: {', '.join(dupes)}")
            if order is not None:
                unknown = [n for n in order if n not in all_names]
                if unknown:
                    raise MarsError(f"band(s) {', '.join(unknown)} not in the scene; it has {', '.join(all_names)}")
                out = _reorder(out, list(order))
            scene = cls(tuple(out), first.height, first.width, first.crs, first.transform,
                        key or Path(items[0][1]).stem, parse_time(time, items[0][1], time_pattern, time_format))
        return scene

    @property
    def bands(self) -> list[str]:
        return [n for f in self.files for n in f.names]

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    def normalisation(self, norm: Normalisation) -> Normalisation:
        """The fixed affine map of ``norm`` on this scene (computed once per method)."""
        if norm.method == "fixed":
            return norm
        tag = norm.model_dump_json()
        if tag not in self._norm_cache:
            low: list[float] = []
            high: list[float] = []
            per_path: dict[tuple[Path, float | None], tuple[list[float], list[float]]] = {}
            with ExitStack() as stack:
                for f in self.files:
                    if (f.path, f.nodata) not in per_path:
                        per_path[(f.path, f.nodata)] = percentiles([_open(f.path, stack)], norm, [f.nodata],
                                                                   what=f"{self.key} ({f.path.name})")
                    lo, hi = per_path[(f.path, f.nodata)]
                    low += [lo[i - 1] for i in f.indexes]
                    high += [hi[i - 1] for i in f.indexes]
            self._norm_cache[tag] = norm.for_scene(low, high)
        return self._norm_cache[tag]

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """(raw bands [C, h, w] float32, valid [h, w]) for a window inside the scene.

        A pixel is invalid when it is nodata (the override, else the file's nodata or its
        mask/alpha) or not finite in ANY band of any file: a model must not learn from a
        pixel one of its inputs does not have.
        """
        h, w = int(window.height), int(window.width)
        data = np.empty((len(self.bands), h, w), dtype=np.float32)
        valid = np.ones((h, w), dtype=bool)
        c = 0
        with ExitStack() as stack:
            for f in self.files:
                ds = _open(f.path, stack)
                raw = ds.read(list(f.indexes), window=window)
                if f.nodata is not None:
                    valid &= ~(raw == f.nodata).any(axis=0)
                else:
                    for i, flags in zip(f.indexes, (ds.mask_flag_enums[i - 1] for i in f.indexes), strict=True):
                        if MaskFlags.all_valid in flags:
                            continue
                        nd = ds.nodatavals[i - 1]
                        if MaskFlags.nodata in flags and nd is not None and not np.isnan(nd):
                            valid &= raw[f.indexes.index(i)] != nd
                        elif MaskFlags.nodata not in flags:
                            valid &= ds.read_masks(i, window=window) != 0
                if np.issubdtype(raw.dtype, np.floating):
                    valid &= np.isfinite(raw).all(axis=0)
                data[c : c + len(f.indexes)] = raw
                c += len(f.indexes)
        return data, valid


def _reorder(files: list[BandFile], order: list[str]) -> list[BandFile]:
    """Split files into one entry per selected band so that any order across files works."""
    where = {n: (f, i) for f in files for n, i in zip(f.names, f.indexes, strict=True)}
    out: list[BandFile] = []
    for name in order:
        f, idx = where[name]
        if out and out[-1].path == f.path and out[-1].nodata == f.nodata:
            last = out[-1]
            out[-1] = BandFile(last.key, last.path, (*last.names, name), (*last.indexes, idx), last.nodata)
        else:
            out.append(BandFile(f.key, f.path, (name,), (idx,), f.nodata))
    return out


@dataclass
class TimeSeries:
    """T scenes of one site, on one grid, in time order when times are known."""

    scenes: tuple[GeoScene, ...]
    key: str = ""

    def __post_init__(self) -> None:
        if not self.scenes:
            raise MarsError("a time series needs at least one scene")
        if len({tuple(s.bands) for s in self.scenes}) != 1:
            raise MarsError(f"time series '{self.key}': every date must have the same bands")

    @classmethod
    def of(cls, scenes: Sequence[GeoScene], key: str = "", grid_tolerance: float = 0.01,
           sort_by_time: bool = True) -> TimeSeries:
        """Check that ``scenes`` share one grid (once) and order them by acquisition time."""
        with ExitStack() as stack:
            ref = scenes[0]
            a = _open(ref.files[0].path, stack)
            for s in scenes[1:]:
                check_same_grid(ref.files[0].path, a, s.files[0].path, _open(s.files[0].path, stack), grid_tolerance)
        ordered = list(scenes)
        if sort_by_time and all(s.time is not None for s in ordered):
            ordered.sort(key=lambda s: s.time)  # type: ignore[arg-type, return-value]
        return cls(tuple(ordered), key or ref.key)

    @property
    def times(self) -> list[dt.datetime | None]:
        return [s.time for s in self.scenes]

    @property
    def shape(self) -> tuple[int, int]:
        return self.scenes[0].shape

    @property
    def crs(self) -> Any:
        return self.scenes[0].crs

    @property
    def transform(self) -> Any:
        return self.scenes[0].transform

    @property
    def files(self) -> tuple[BandFile, ...]:
        return self.scenes[0].files
