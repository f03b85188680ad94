"""Opening and validating input scenes, windowed reading, and atomic output files.

Every check here raises :class:`MarsError` (a one-line user error) *before* any output
file exists, so a bad call never leaves a half-written product behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from mars_core.data import InputContract
from mars_core.errors import MarsError
from mars_core.geodata.grid import check_same_grid
from mars_core.geodata.normalise import scene_normalisation

#: Output GeoTIFF block edge; strips are written in whole block rows so that no compressed
#: block is ever rewritten (a rewrite would append a new copy to the file).
BLOCK = 256
#: GDAL block cache in MB: bounded so peak memory does not grow with scene size.
GDAL_CACHE_MB = 64
#: zstd level 1: several times faster than the default (9) at a few % larger files; the
#: floating-point predictor does most of the work for probabilities.
ZSTD_LEVEL = 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


@dataclass(frozen=True)
class OutputPaths:
    """The three products of one prediction (see :func:`plan_outputs` for the naming)."""

    mask: Path
    probability: Path
    polygons: Path

    def all(self) -> tuple[Path, Path, Path]:
        return (self.mask, self.probability, self.polygons)


def plan_outputs(output: str | Path, inputs: Sequence[Path], overwrite: bool) -> OutputPaths:
    """``out.tif`` -> mask ``out.tif``, probability ``out.prob.tif``, polygons ``out.geojson``.

    Refuses (MarsError) to replace an existing product unless ``overwrite``, and never
    replaces an input, whatever ``overwrite`` says.
    """
    out = Path(output)
    suffix = out.suffix or ".tif"
    paths = OutputPaths(
        mask=out,
        probability=out.with_name(f"{out.stem}.prob{suffix}"),
        polygons=out.with_name(f"{out.stem}.geojson"),
    )
    if not out.parent.is_dir():
        raise MarsError(f"output directory {out.parent} does not exist")
    resolved_inputs = {p.resolve() for p in inputs}
    for p in paths.all():
        if p.resolve() in resolved_inputs:
            raise MarsError(f"output {p} is one of the inputs; choose another output name")
        if p.is_dir():
            raise MarsError(f"output {p} is a directory")
        if p.exists() and not overwrite:
            raise MarsError(f"output {p} already exists; pass overwrite=True (--overwrite) to replace it")
    return paths


@contextlib.contextmanager
def atomic_outputs(paths: OutputPaths) -> Iterator[OutputPaths]:
    """Yield temporary names in the destination directories; rename them only on success.

    Same directory, so the final ``os.replace`` is a rename on one file system: a reader
    never sees a half-written product. On any error all temporaries are removed. (The three
    renames are done one after another; they are not one atomic transaction.)
    """
    pid = os.getpid()
    tmp = OutputPaths(*(p.with_name(f".{p.name}.partial-{pid}") for p in paths.all()))
    try:
        yield tmp
    except BaseException:
        for t in tmp.all():
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
        raise
    for t, final in zip(tmp.all(), paths.all(), strict=True):
        os.replace(t, final)


def open_inputs(
    inputs: Sequence[Path], contract: InputContract, grid_tolerance: float, stack: ExitStack
) -> list[DatasetReader]:
    """Open every input and check it against the contract and (for pairs) each other."""
    if len(inputs) != contract.n_inputs:
        raise MarsError(
            f"the model expects {contract.n_inputs} input scene(s) ({contract.kind.value}) but {len(inputs)} were given"
        )
    datasets = []
    for path in inputs:
        try:
            ds = stack.enter_context(rasterio.open(path))
        except RasterioError as exc:
            raise MarsError(f"{path}: cannot be opened as a raster ({_one_line(exc)})") from None
        contract.check_band_count(ds.count, str(path))
        datasets.append(ds)
    for path, ds in zip(inputs[1:], datasets[1:], strict=True):
        check_same_grid(inputs[0], datasets[0], path, ds, grid_tolerance)
    return datasets


class StripReader:
    """Reads full-width strips of ``tile`` rows from every input, normalised, with validity.

    A strip is read once and all tiles of that row are sliced from it, so each input pixel is
    decoded about once per overlapping tile row rather than once per overlapping tile.
    Invalid pixels (source nodata, dataset/alpha masks, NaN/inf; the contract's nodata value
    for bands that declare none) are filled with 0, the normalised mean, and reported in
    ``valid`` so that their output becomes nodata.

    The buffers are allocated once and reused for every strip (fresh large allocations cost
    page faults on every call), so what :meth:`read` returns is valid until the next call.
    """

    def __init__(self, datasets: Sequence[DatasetReader], contract: InputContract, tile: int) -> None:
        self.datasets = datasets
        self.tile = tile
        self.height, self.width = datasets[0].shape
        self.padded_width = max(self.width, tile)
        # One affine map per input: the contract's constants, or (robust method) the stretch
        # from each input's own percentiles, read decimated with bounded memory.
        norms = [scene_normalisation(contract.normalisation, [ds], what=str(getattr(ds, "name", "input")))
                 for ds in datasets]
        self._affine = [(np.asarray(n.mean, dtype=np.float32).reshape(-1, 1, 1),
                         np.asarray(n.std, dtype=np.float32).reshape(-1, 1, 1)) for n in norms]
        self.mean = torch.from_numpy(self._affine[0][0])  # of the first input (all inputs: ``_affine``)
        self.std = torch.from_numpy(self._affine[0][1])
        self._mean_np, self._std_np = self._affine[0]
        self.contract_nodata = contract.nodata
        shape = (tile, self.padded_width)
        self._valid = np.zeros(shape, dtype=bool)
        self._float = [np.zeros((ds.count, *shape), dtype=np.float32) for ds in datasets]
        self._native = [np.empty((ds.count, tile, self.width), dtype=ds.dtypes[0]) for ds in datasets]

    def _validity(self, ds: DatasetReader, data: np.ndarray, window: Window, valid: np.ndarray) -> None:
        per_dataset_done = False
        for i, flags in enumerate(ds.mask_flag_enums):
            if MaskFlags.all_valid in flags:
                if self.contract_nodata is not None:
                    valid &= data[i] != self.contract_nodata
            elif MaskFlags.nodata in flags:
                nd = ds.nodatavals[i]
                if nd is not None and np.isnan(nd):
                    continue  # caught by the finiteness test below
                valid &= data[i] != nd
            elif MaskFlags.per_dataset in flags:
                if not per_dataset_done:
                    valid &= ds.read_masks(i + 1, window=window) != 0
                    per_dataset_done = True
            else:
                valid &= ds.read_masks(i + 1, window=window) != 0
        if np.issubdtype(data.dtype, np.floating):
            valid &= np.isfinite(data).all(axis=0)

    def read(self, row0: int) -> tuple[list[torch.Tensor], np.ndarray]:
        """Strip starting at ``row0``: per input a tensor [C, tile, padded_width], plus
        validity [tile, padded_width] (False in padding beyond the scene)."""
        h = min(self.tile, self.height - row0)
        w = self.width
        window = Window(0, row0, w, h)
        valid = self._valid
        valid.fill(False)
        valid[:h, :w] = True
        for ds, native, buf in zip(self.datasets, self._native, self._float, strict=True):
            data = ds.read(window=window, out=native) if h == self.tile else ds.read(window=window)
            self._validity(ds, data, window, valid[:h, :w])
            buf[:, :h, :w] = data
            if h < self.tile:
                buf[:, h:] = 0.0
        invalid = ~valid if not valid.all() else None
        strips = []
        for buf, (mean, std) in zip(self._float, self._affine, strict=True):
            # The same float32 arithmetic as Normalisation.apply, (x - mean) / std, done in place
            # with numpy: single-threaded small ops avoid thread-pool wake-ups between batches.
            np.subtract(buf, mean, out=buf)
            np.divide(buf, std, out=buf)
            if invalid is not None:
                buf[:, invalid] = 0.0
            strips.append(torch.from_numpy(buf))
        return strips, valid


def output_profile(ref: DatasetReader, dtype: str, nodata: float) -> dict[str, Any]:
    """Tiled, zstd-compressed single-band GeoTIFF on the reference grid; CRS copied as is."""
    return {
        "driver": "GTiff",
        "width": ref.width,
        "height": ref.height,
        "count": 1,
        "dtype": dtype,
        "nodata": nodata,
        "crs": ref.crs,
        "transform": ref.transform,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "zstd",
        "zstd_level": ZSTD_LEVEL,
        "predictor": 3 if dtype.startswith("float") else 2,
        "bigtiff": "IF_SAFER",
    }
