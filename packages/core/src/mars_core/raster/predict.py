"""Whole-scene streaming inference: windows in, tiled GeoTIFFs and GeoJSON out.

Data flow: full-width input strips of ``tile`` rows are read one tile row at a time; tiles
are sliced from them and run through the model in batches; each tile contributes only the
region it owns (centre-crop, :mod:`mars_core.raster.tiling`) to an output row buffer; whole
256-row block strips are written to the probability and mask files and vectorised. Peak
memory is therefore bounded by a few strips (linear in scene *width*, independent of scene
height) plus the GDAL cache, never by the scene size.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.io import DatasetReader, DatasetWriter
from rasterio.windows import Window
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mars_core.data import InputContract
from mars_core.dates import parse_time, time_from_tags
from mars_core.errors import MarsError
from mars_core.raster.fuse import called_modules, fold_batchnorm
from mars_core.raster.io import (
    BLOCK,
    GDAL_CACHE_MB,
    StripReader,
    atomic_outputs,
    open_inputs,
    output_profile,
    plan_outputs,
)
from mars_core.raster.polygons import GeoJSONWriter, SeamPolygonizer, row_areas_m2
from mars_core.raster.tiling import TileGrid, make_grid
from mars_core.tasks import TaskKind, takes_times

MASK_NODATA = 255
# uint8 probability: p = DN / 254 (GDAL scale tag), DN 255 = nodata. 254 steps rather than
# 255 because a nodata code is needed; the 0.002 quantisation error is far below any
# model's calibration, and the mask is thresholded on the float value before encoding.
PROB_U8_MAX = 254
PROB_U8_NODATA = 255
PROBABILITY_FORMATS = ("uint8", "float32")
PRECISIONS = ("float32", "bfloat16")
#: How far the optimised model's logits may stray from the original's on the first tile,
#: relative to max(1, largest |logit|): float32 rounding of folded weights is ~1e-6 there.
FOLD_TOLERANCE = 1e-4
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionResult:
    """What :func:`predict_scene` wrote and how long it took."""

    mask: Path
    probability: Path
    polygons: Path
    n_tiles: int
    n_polygons: int
    seconds: float
    megapixels: float
    n_valid_pixels: int
    warnings: tuple[str, ...] = ()
    #: What sped the forward pass up (e.g. "70 batch norm(s) folded", "bfloat16 autocast").
    optimisations: tuple[str, ...] = ()

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return (self.mask, self.probability, self.polygons)


@dataclass
class _Row:
    """Output rows owned by one tile row, filled tile by tile (buffers come from a pool)."""

    prob: np.ndarray  # [own_h, W] float32, NaN until predicted
    valid: np.ndarray  # [own_h, W] bool
    buffers: tuple[np.ndarray, np.ndarray]  # the pooled arrays behind prob and valid
    remaining: int = 0  # tiles queued but not yet predicted
    closed: bool = False  # all tiles of the row queued


class _BlockWriter:
    """Collects completed rows in one block-high buffer; writes and vectorises whole block strips.

    Writing whole 256-row strips means every compressed block is written exactly once.
    """

    def __init__(self, prob_ds: DatasetWriter, mask_ds: DatasetWriter, threshold: float, poly: SeamPolygonizer,
                 probability: str = "uint8") -> None:
        self.prob_ds, self.mask_ds = prob_ds, mask_ds
        self.quantise = probability == "uint8"
        self.height, self.width = prob_ds.height, prob_ds.width
        self.threshold = threshold
        self.poly = poly
        self.row0 = 0  # first scene row held in the buffer
        self.fill = 0  # rows held
        rows = min(BLOCK, self.height)
        self._prob = np.empty((rows, self.width), np.float32)
        self._nodata = np.empty((rows, self.width), bool)
        self._detected = np.empty((rows, self.width), bool)
        self._mask = np.empty((rows, self.width), np.uint8)
        self._scaled = np.empty((rows, self.width), np.float32) if self.quantise else None
        self._prob_u8 = np.empty((rows, self.width), np.uint8) if self.quantise else None
        self.n_valid = 0

    def add(self, prob: np.ndarray) -> None:
        done = 0
        while done < prob.shape[0]:
            target = min(BLOCK, self.height - self.row0)
            n = min(target - self.fill, prob.shape[0] - done)
            self._prob[self.fill : self.fill + n] = prob[done : done + n]
            self.fill += n
            done += n
            if self.fill == target:
                self._write(target)
                self.row0 += target
                self.fill = 0

    def _write(self, h: int) -> None:
        prob, nodata = self._prob[:h], self._nodata[:h]
        detected, mask = self._detected[:h], self._mask[:h]
        window = Window(0, self.row0, self.width, h)
        np.isnan(prob, out=nodata)
        np.greater_equal(prob, self.threshold, out=detected)  # False for NaN
        mask[...] = detected
        mask[nodata] = MASK_NODATA
        self.n_valid += int(nodata.size - np.count_nonzero(nodata))
        if self.quantise:
            self.prob_ds.write(self._encode(prob, nodata, h), 1, window=window)
        else:
            self.prob_ds.write(prob, 1, window=window)
        self.mask_ds.write(mask, 1, window=window)
        self.poly.add_strip(self.row0, detected, prob)

    def _encode(self, prob: np.ndarray, nodata: np.ndarray, h: int) -> np.ndarray:
        """``round(p * 254)`` in preallocated buffers; 255 marks nodata (NaN in float32 output)."""
        assert self._scaled is not None and self._prob_u8 is not None
        scaled, out = self._scaled[:h], self._prob_u8[:h]
        np.multiply(prob, PROB_U8_MAX, out=scaled)
        scaled[nodata] = PROB_U8_NODATA
        np.rint(scaled, out=scaled)
        out[...] = scaled  # NaN were replaced above, so the cast is defined everywhere
        return out


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("predict"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not enabled,
    )


def predict_scene(
    model: torch.nn.Module,
    contract: InputContract,
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    tile: int | None = None,
    overlap: float = 0.25,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    threshold: float | None = None,
    min_area_m2: float = 0.0,
    min_area_px: int = 0,
    grid_tolerance: float = 0.01,
    blend: str = "centre",
    progress: bool = True,
    overwrite: bool = False,
    channels_last: bool = True,
    probability: str = "uint8",
    times: Sequence[float | str | None] | None = None,
    optimise: bool = True,
    precision: str = "float32",
) -> PredictionResult:
    """Predict a whole scene (or T >= 2 co-registered dates of one) far larger than memory.

    For change detection ``inputs`` are the contract's ``n_inputs`` dates in date order; a
    model whose ``forward`` takes ``times`` gets them as days since J2000 ([B,T], NaN when
    unknown): from ``times`` (numbers, ISO strings or None per input), else from each
    input's acquisition-time tags (:data:`mars_core.dates.TIME_TAGS`).

    Outputs, named from ``output`` (the path the user gave, e.g. ``out.tif``):

    * ``out.tif`` - binary mask, uint8 1 = detection (probability >= threshold), 0 = none,
      255 = nodata. The mask is *the* product, so it gets the exact name asked for;
    * ``out.prob.tif`` - probability. With ``probability="uint8"`` (the default) DN 0-254
      encode p = DN / 254 and 255 is nodata; the band carries GDAL scale/offset (1/254, 0), so
      GDAL (``-unscale``), QGIS and ``rasterio`` (``ds.scales``) recover p. A quarter of the
      bytes of float32 and much cheaper to compress, which is most of the streaming overhead
      (see the core's BENCHMARK.md). ``probability="float32"`` writes p itself, nodata NaN;
    * ``out.geojson`` - detection polygons in the source CRS with ``area_m2``, ``area_px``,
      ``mean_prob``; the CRS WKT is in the top-level ``crs`` member. Components under
      ``min_area_px`` pixels or ``min_area_m2`` m² are left out of it (not out of the mask).

    Both GeoTIFFs are tiled (256x256), zstd-compressed with a predictor, on the source grid
    with the source CRS (Mars CRSs pass through unchanged; a scene without CRS gives outputs
    without CRS). Files appear only when everything succeeded (temporary
    ``.<name>.partial-<pid>`` files are renamed at the end) and never replace existing files
    unless ``overwrite=True``.

    ``tile`` defaults to ``contract.tile_size``; ``overlap`` is the fraction of a tile shared
    with a neighbour; half of it is the margin discarded at each inner tile edge, so it should
    be at least the model's receptive radius. Pixels that are nodata in any band of any input
    are nodata in the outputs (the model sees them as 0, the normalised mean). Raises
    :class:`MarsError` for every user mistake (unreadable input, band count, pair not on one
    grid, bad tiling, existing output, scene without valid pixels) and then writes nothing.

    ``channels_last`` runs the model on NHWC tensors: measured 1.0-1.4x faster on CPU for the
    task models here (see the core's BENCHMARK.md) and the usual fast path for convolutions on
    GPUs. A model that cannot run on NHWC input fails its first batch; that batch is then
    retried in the default layout and the rest of the scene stays there (with a warning).
    The model's parameters are returned to the default layout afterwards.

    ``optimise`` runs a copy of the model with every batch norm that reads only a convolution
    folded into it (:mod:`mars_core.raster.fuse`): the same outputs to float rounding, 10-20 %
    less CPU time for ResNet-style models (packages/icefrag/BENCHMARK.md, "Throughput"). The
    copy's logits are compared with the original model's on the first tile; if they differ
    by more than :data:`FOLD_TOLERANCE` (or the copy cannot be made) the original model is
    used, with a warning. ``optimise=False`` is the path before the rewrite existed.

    ``precision="bfloat16"`` runs the forward pass under bfloat16 autocast: about 2x faster on
    CPUs with AVX512-BF16 or AMX (and on recent GPUs), but the probabilities change in the
    third or fourth decimal, so it is opt-in; the default ``"float32"`` keeps them exact.
    """
    start = time.perf_counter()
    if contract.kind not in (TaskKind.SEGMENTATION, TaskKind.CHANGE_DETECTION):
        raise MarsError(f"scene prediction supports segmentation and change detection, not "
                        f"{contract.kind.value} (use mars_core.raster.classify_scene)")
    if blend != "centre":
        raise MarsError(f"blend must be 'centre' (weighted blending is not implemented), got {blend!r}")
    if probability not in PROBABILITY_FORMATS:
        raise MarsError(f"probability must be one of {', '.join(PROBABILITY_FORMATS)}, got {probability!r}")
    if precision not in PRECISIONS:
        raise MarsError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MarsError(f"batch_size must be a positive integer, got {batch_size!r}")
    threshold = contract.threshold if threshold is None else threshold
    if not 0.0 <= threshold <= 1.0:
        raise MarsError(f"threshold must be between 0 and 1, got {threshold}")
    if min_area_m2 < 0:
        raise MarsError(f"min_area_m2 must be >= 0, got {min_area_m2}")
    if not isinstance(min_area_px, int) or min_area_px < 0:
        raise MarsError(f"min_area_px must be a non-negative whole number of pixels, got {min_area_px!r}")
    paths_in = [Path(p) for p in inputs]
    paths = plan_outputs(output, paths_in, overwrite)
    dev = torch.device(device)

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), ExitStack() as inputs_stack:
        datasets = open_inputs(paths_in, contract, grid_tolerance, inputs_stack)
        date_times = _date_times(contract.kind, datasets, times)  # checks --time even if unused
        date_times = date_times if takes_times(model) else None
        ref = datasets[0]
        grid = make_grid(ref.height, ref.width, tile or contract.tile_size, overlap)
        row_areas, notes = row_areas_m2(ref.crs, ref.transform, ref.height)
        if min_area_m2 > 0 and row_areas is None:
            raise MarsError(f"min_area_m2 needs areas in m² but {notes[0].split(':')[0]}; use min_area_m2=0")
        reader = StripReader(datasets, contract, grid.tile)
        was_training = model.training
        model.to(dev).eval()
        if channels_last:
            model.to(memory_format=torch.channels_last)
        try:
            with atomic_outputs(paths) as tmp, ExitStack() as out_stack:
                prob_ds = out_stack.enter_context(
                    rasterio.open(tmp.probability, "w", **(
                        output_profile(ref, "uint8", PROB_U8_NODATA) if probability == "uint8"
                        else output_profile(ref, "float32", float("nan"))))
                )
                if probability == "uint8":
                    prob_ds.scales, prob_ds.offsets = (1.0 / PROB_U8_MAX,), (0.0,)
                    prob_ds.update_tags(1, encoding=f"probability = DN / {PROB_U8_MAX}; {PROB_U8_NODATA} = nodata")
                mask_ds = out_stack.enter_context(
                    rasterio.open(tmp.mask, "w", **output_profile(ref, "uint8", MASK_NODATA))
                )
                geojson = GeoJSONWriter(tmp.polygons, ref.crs, notes)
                out_stack.callback(geojson.close)
                poly = SeamPolygonizer(ref.height, ref.transform, row_areas, min_area_m2, geojson.write,
                                       min_area_px=min_area_px)
                writer = _BlockWriter(prob_ds, mask_ds, threshold, poly, probability)
                run_notes, done = _run(model, contract.kind, dev, grid, reader, writer, batch_size, progress,
                                       channels_last, date_times, optimise, precision)
                poly.finish()
                if writer.n_valid == 0:
                    raise MarsError(f"{paths_in[0]} contains no valid pixels (everything is nodata)")
                n_polygons = geojson.n
        finally:
            model.train(was_training)
            if channels_last:
                model.to(memory_format=torch.contiguous_format)

    return PredictionResult(
        mask=paths.mask,
        probability=paths.probability,
        polygons=paths.polygons,
        n_tiles=grid.n_tiles,
        n_polygons=n_polygons,
        seconds=time.perf_counter() - start,
        megapixels=ref.height * ref.width / 1e6,
        n_valid_pixels=writer.n_valid,
        warnings=(*notes, *run_notes),
        optimisations=tuple(done),
    )


def _date_times(kind: TaskKind, datasets: Sequence[DatasetReader], given: Sequence[float | str | None] | None
                ) -> torch.Tensor | None:
    """Days since J2000 per date ([T] float32, NaN = unknown): ``given`` values (each may be
    None), else the acquisition-time tags of each input (:func:`mars_core.dates.time_from_tags`)."""
    if kind is not TaskKind.CHANGE_DETECTION:
        return None
    if given is not None and len(given) != len(datasets):
        raise MarsError(f"{len(given)} time(s) given for {len(datasets)} input scene(s); give one per input")
    values = []
    for i, ds in enumerate(datasets):
        value = given[i] if given is not None else None
        if isinstance(value, str):
            value = parse_time(value, f"time of input {i + 1}")
        values.append(float(value) if value is not None else time_from_tags(ds.tags()))
    return torch.tensor(values, dtype=torch.float32)


def _run(
    model: torch.nn.Module,
    kind: TaskKind,
    dev: torch.device,
    grid: TileGrid,
    reader: StripReader,
    writer: _BlockWriter,
    batch_size: int,
    progress: bool,
    channels_last: bool,
    times: torch.Tensor | None = None,
    optimise: bool = False,
    precision: str = "float32",
) -> tuple[list[str], list[str]]:
    """Tile rows in order; tiles are copied into a reused batch buffer, so the input strip can
    be reused at once; rows are handed to the writer strictly in order once all their tiles
    are in. Tiles owning no valid pixel are never given to the model (their output is nodata
    anyway): on a map-projected HiRISE pair, whose valid area is a slanted strip, that is often
    a third or more of the tiles. Returns notes for the result (a channels_last or
    optimisation fallback) and the optimisations applied."""
    t, w = grid.tile, grid.width
    n_inputs = len(reader.datasets)  # 1, or the T dates of change detection
    n_bands = reader.mean.shape[0]
    xbuf = [torch.empty(batch_size, n_bands, t, t) for _ in range(n_inputs)]
    xnp = [b.numpy() for b in xbuf]
    pbuf = torch.empty(batch_size, t, t)
    max_own = max(o1 - o0 for o0, o1 in grid.rows.own)
    pool: list[tuple[np.ndarray, np.ndarray]] = []
    rows: deque[_Row] = deque()
    # (row, crop rows r0:r1, crop cols c0:c1 in tile coordinates, destination column)
    slots: list[tuple[_Row, int, int, int, int, int]] = []

    def flush_done() -> None:
        while rows and rows[0].closed and rows[0].remaining == 0:
            row = rows.popleft()
            row.prob[~row.valid] = np.nan
            writer.add(row.prob)
            pool.append(row.buffers)

    nhwc = channels_last
    first = True
    notes: list[str] = []
    done: list[str] = []
    runner = model  # what runs the batches after the first: the original or its optimised copy
    low = precision == "bfloat16"

    def forward(module: torch.nn.Module, n: int, autocast: bool = False) -> torch.Tensor:
        xs = [b[:n].to(dev, non_blocking=True) for b in xbuf]
        if nhwc:
            xs = [x.contiguous(memory_format=torch.channels_last) for x in xs]
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=autocast):
            if times is not None:  # [T] -> [n, T]: every tile of a scene shares the dates
                return module(*xs, times=times.to(dev).expand(n, -1))
            return module(*xs)

    def first_forward(n: int, called: set[str]) -> torch.Tensor:
        """The original model in float32 on the first batch (the reference for the optimised
        copy), falling back from channels_last to the default layout if the model needs it."""
        nonlocal nhwc

        def run() -> torch.Tensor:
            if not optimise:
                return forward(model, n)
            out: list[torch.Tensor] = []  # which modules ran: where the fold may trace
            called.update(called_modules(model, lambda: out.append(forward(model, n))))
            return out[0]

        if not nhwc:
            return run()
        try:
            return run()
        except Exception as exc:  # noqa: BLE001 - an optimisation must not cost the run
            note = (f"model failed on channels_last input ({type(exc).__name__}: {exc}); "
                    "predicted in the default layout")
            log.warning(note)
            notes.append(note)
            nhwc = False
            model.to(memory_format=torch.contiguous_format)
            called.clear()
            return run()

    def optimised_copy(reference: torch.Tensor, called: set[str]) -> torch.nn.Module:
        """The batch-norm-folded copy if it reproduces ``reference`` on the first tile; else the original."""
        try:
            copy, folded = fold_batchnorm(model, called)
            if not folded:
                return model
            # one tile is enough to catch a wrong fold, and costs 1/n of a batch (a model that
            # mixes the tiles of a batch differs here too, and keeps the original: safe)
            got, want = forward(copy, 1), reference[:1]
            scale = max(1.0, float(want.abs().max()))
            err = float((got.float() - want.float()).abs().max()) if got.shape == want.shape else float("inf")
            if not err <= FOLD_TOLERANCE * scale:
                raise ValueError(f"its logits differ by {err:.3g} on the first tile")
        except Exception as exc:  # noqa: BLE001 - an optimisation must not cost the run
            note = f"optimised model not used ({type(exc).__name__}: {exc}); predicted with the model as given"
            log.warning(note)
            notes.append(note)
            return model
        done.append(f"{folded} batch norm(s) folded")
        return copy

    def predict_batch() -> None:
        nonlocal first, runner
        n = len(slots)
        if first:
            called: set[str] = set()
            logits = first_forward(n, called)
            if optimise:
                runner = optimised_copy(logits, called)
            if low:
                logits = forward(runner, n, autocast=True)
                done.append("bfloat16 autocast")
        else:
            logits = forward(runner, n, autocast=low)
        first = False
        expected = (n, 1, t, t)
        if tuple(logits.shape) != expected:
            raise MarsError(f"model returned logits of shape {tuple(logits.shape)}, expected {expected}")
        if logits.device.type == "cpu":
            torch.sigmoid(logits[:, 0].float(), out=pbuf[:n])
        else:
            pbuf[:n].copy_(logits[:, 0].float().sigmoid())
        prob = pbuf.numpy()
        for k, (row, r0, r1, c0, c1, dst) in enumerate(slots):
            row.prob[:, dst : dst + c1 - c0] = prob[k, r0:r1, c0:c1]
            row.remaining -= 1
        slots.clear()
        bar.advance(task, n)

    with _progress(progress) as bar, torch.inference_mode():
        task = bar.add_task("tiles", total=grid.n_tiles)
        for y, (oy0, oy1) in zip(grid.rows.starts, grid.rows.own, strict=True):
            strips, valid = reader.read(y)
            if pool:
                pbase, vbase = pool.pop()
            else:
                pbase, vbase = np.empty((max_own, w), np.float32), np.empty((max_own, w), bool)
            row = _Row(pbase[: oy1 - oy0], vbase[: oy1 - oy0], (pbase, vbase))
            row.prob.fill(np.nan)
            row.valid[...] = valid[oy0 - y : oy1 - y, :w]
            rows.append(row)
            for x, (ox0, ox1) in zip(grid.cols.starts, grid.cols.own, strict=True):
                if not row.valid[:, ox0:ox1].any():
                    bar.advance(task, 1)
                    continue
                for b, strip in zip(xnp, strips, strict=True):
                    # numpy copy: one thread, no intra-op pool wake-up per tile
                    np.copyto(b[len(slots)], strip.numpy()[:, :, x : x + t])
                slots.append((row, oy0 - y, oy1 - y, ox0 - x, ox1 - x, ox0))
                row.remaining += 1
                if len(slots) == batch_size:
                    predict_batch()
                    flush_done()
            row.closed = True
            flush_done()
        if slots:
            predict_batch()
        flush_done()
    return notes, done
