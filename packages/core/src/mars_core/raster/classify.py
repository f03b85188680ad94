"""Classification over whole scenes: one class probability per chunk, with its footprint.

A scene far wider and longer than memory is read one chunk row at a time: a full-width
strip of ``chunk`` rows in the scene's own data type (a 20,000-px-wide, 3-band 8-bit scene
with 512-px chunks holds about 30 MB), from which chunks are cut, normalised as the
contract says, resampled with antialiasing to the model's input size and classified in
batches. Only the per-chunk records (a few hundred bytes each) accumulate.

Task hooks, named by import path in :class:`mars_core.tasks.TaskSpec` (resolved here, so
listing tasks imports nothing heavy) and parameterised by the run config's ``predict``
section (``predict.filter`` / ``predict.summary``):

* ``chunk_filter(chunk, valid, params) -> str | None``: ``chunk`` is the raw chunk
  [C,h,w] in the scene's data type (before normalisation), ``valid`` its [h,w] bool
  validity (nodata, masks, NaN excluded); return None to classify the chunk, or the reason
  for skipping it (recorded in the outputs). A filter that finds something worth recording
  without skipping (e.g. hot pixels) returns a dict instead: ``"skip"`` (None or the reason)
  plus extra record fields (scalars, written to every output; absent ones are empty). The
  filter may repair ``chunk`` in place (e.g. replace faulty pixels): the model sees the
  repaired values, since the chunk is normalised only after the filter has run.
* ``summariser(records, classes, params) -> dict``: ``records`` are the chunk records as
  written to ``chunks.csv`` (dicts, skipped chunks included), ``classes`` the contract's
  class names; the JSON-able result goes in ``summary.json`` under ``summary``.

Outputs (in ``output_dir``; each written to a temporary name and renamed only when all three
succeeded; existing ones are replaced only with ``overwrite``):

* ``chunks.geojson``: one polygon per chunk, its footprint in the scene CRS (the WKT in a
  top-level ``crs`` member, as the segmentation outputs; pixel coordinates through the
  scene's transform when the scene has no CRS);
* ``chunks.csv``: the same records, one row per chunk;
* ``summary.json``: settings, counts and the summariser's result.

Record fields: ``row``, ``col`` (chunk grid position), ``x``, ``y``, ``width``, ``height``
(pixel window in the scene), ``valid_fraction``, ``skipped``, ``reason``, ``class`` (argmax
name), ``p_<class>`` per class and, for two classes, ``p`` = probability of ``classes[1]``
(the positive class). Probabilities are empty (None) for skipped chunks.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.errors import RasterioError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from mars_core.data import InputContract
from mars_core.errors import MarsError
from mars_core.geodata.normalise import scene_normalisation
from mars_core.raster.io import GDAL_CACHE_MB
from mars_core.raster.tiling import axis_tiles
from mars_core.tasks import TaskKind

ChunkFilter = Callable[[np.ndarray, np.ndarray, dict[str, Any]], "str | None"]
SceneSummariser = Callable[[list[dict[str, Any]], list[str], dict[str, Any]], dict[str, Any]]

OUTPUT_NAMES = ("chunks.geojson", "chunks.csv", "summary.json")
NO_VALID_PIXELS = "no valid pixels"


@dataclass(frozen=True)
class ClassificationResult:
    """What :func:`classify_scene` wrote, and the headline numbers."""

    geojson: Path
    csv: Path
    summary: Path
    n_chunks: int
    n_classified: int
    n_skipped: int
    seconds: float
    summary_values: dict[str, Any]

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return (self.geojson, self.csv, self.summary)


def load_callable(path: str, what: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function; a one-line MarsError otherwise."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise MarsError(f"{what} '{path}' must be 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MarsError(f"{what} '{path}': cannot import {module_name} ({exc})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise MarsError(f"{what} '{path}': {module_name} has no function {attr}")
    return fn


def default_summary(records: list[dict[str, Any]], classes: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """Counts per argmax class and mean probability per class over the classified chunks."""
    done = [r for r in records if not r["skipped"]]
    out: dict[str, Any] = {
        "counts": {c: sum(1 for r in done if r["class"] == c) for c in classes},
        "mean_probability": {c: (float(np.mean([r[f"p_{c}"] for r in done])) if done else None)
                             for c in classes},
    }
    return out


def chunk_starts(length: int, chunk: int, overlap: float) -> tuple[int, ...]:
    """Chunk origins along one axis: every ``chunk * (1 - overlap)`` px, the last one shifted
    back to end at the border (no chunk hangs over the edge unless the scene is smaller)."""
    stride = max(1, round(chunk * (1.0 - overlap)))
    return axis_tiles(length, chunk, stride).starts


def _plan(output_dir: Path, scene: Path, overwrite: bool) -> list[Path]:
    if output_dir.exists() and not output_dir.is_dir():
        raise MarsError(f"output {output_dir} exists and is not a directory")
    if not output_dir.parent.is_dir():
        raise MarsError(f"parent directory of {output_dir} does not exist")
    paths = [output_dir / n for n in OUTPUT_NAMES]
    for p in paths:
        if p.resolve() == scene.resolve():
            raise MarsError(f"output {p} is the input scene; choose another output directory")
        if p.exists() and not overwrite:
            raise MarsError(f"output {p} already exists; pass --overwrite to replace it")
    return paths


def _valid_mask(ds: DatasetReader, data: np.ndarray, window: Window, nodata: float | None) -> np.ndarray:
    """Valid where every band's GDAL mask (nodata, alpha, mask band) is set and the value is
    finite and not the contract's nodata."""
    valid = (ds.read_masks(window=window) != 0).all(axis=0)
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
    if nodata is not None:
        valid &= ~(data == nodata).any(axis=0)
    return valid


def _footprint(ds: DatasetReader, x: int, y: int, w: int, h: int) -> list[list[float]]:
    t = ds.transform
    ring = [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
    return [[t.a * c + t.b * r + t.c, t.d * c + t.e * r + t.f] for c, r in ring]


def classify_scene(
    model: torch.nn.Module,
    contract: InputContract,
    input: str | Path,  # noqa: A002 - the CLI's name for it
    output_dir: str | Path,
    *,
    chunk: int | None = None,
    input_size: int | None = None,
    overlap: float = 0.0,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    chunk_filter: ChunkFilter | None = None,
    summariser: SceneSummariser | None = None,
    filter_params: dict[str, Any] | None = None,
    summary_params: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_chunk_row: Callable[[int, int], None] | None = None,
) -> ClassificationResult:
    """Classify every ``chunk`` x ``chunk`` window of one scene (see the module docstring).

    ``chunk`` (scene pixels) and ``input_size`` (model pixels) default to the contract's
    tile size; ``overlap`` is the fraction of a chunk shared with its neighbour (0 = a
    partition). A chunk larger than the scene is padded with invalid pixels. Chunks without
    any valid pixel are skipped (reason ``no valid pixels``) before the task's filter is
    asked. ``on_chunk_row(done, total)`` is called after each chunk row (progress).
    Raises :class:`MarsError` for every user mistake before any output exists.
    """
    start = time.perf_counter()
    if TaskKind(contract.kind) is not TaskKind.CLASSIFICATION:
        raise MarsError(f"classify_scene needs a classification model, not {TaskKind(contract.kind).value}")
    chunk = chunk or contract.tile_size
    size = input_size or contract.tile_size
    if not isinstance(chunk, int) or chunk < 1 or not isinstance(size, int) or size < 1:
        raise MarsError(f"chunk and input size must be positive whole numbers of pixels, got {chunk}, {size}")
    if not 0.0 <= overlap < 1.0:
        raise MarsError(f"chunk overlap must be in [0, 1), got {overlap}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MarsError(f"batch_size must be a positive integer, got {batch_size!r}")
    scene = Path(input)
    if not scene.is_file():
        raise MarsError(f"input not found: {scene}")
    out_dir = Path(output_dir)
    finals = _plan(out_dir, scene, overwrite)
    classes = list(contract.classes)
    fparams, sparams = dict(filter_params or {}), dict(summary_params or {})
    summarise = summariser or default_summary
    dev = torch.device(device)

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), contextlib.ExitStack() as stack:
        try:
            ds = stack.enter_context(rasterio.open(scene))
        except RasterioError as exc:
            raise MarsError(f"{scene}: cannot be opened as a raster ({' '.join(str(exc).split())})") from None
        contract.check_band_count(ds.count, str(scene))
        norm = scene_normalisation(contract.normalisation, [ds], what=str(scene))
        mean = torch.tensor(norm.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(norm.std, dtype=torch.float32).view(-1, 1, 1)
        rows = chunk_starts(ds.height, chunk, overlap)
        cols = chunk_starts(ds.width, chunk, overlap)
        records: list[dict[str, Any]] = []
        pending: list[tuple[dict[str, Any], torch.Tensor]] = []
        was_training = model.training
        model.to(dev).eval()

        def run_batch() -> None:
            x = torch.stack([t for _, t in pending]).to(dev)
            with torch.inference_mode():
                logits = model(x)
            if logits.ndim != 2 or logits.shape != (len(pending), len(classes)):
                raise MarsError(f"model returned logits of shape {tuple(logits.shape)}, expected "
                                f"({len(pending)}, {len(classes)}) for classes {', '.join(classes)}")
            probs = logits.float().softmax(dim=1).cpu().numpy()
            for (rec, _), p in zip(pending, probs, strict=True):
                for c, v in zip(classes, p, strict=True):
                    rec[f"p_{c}"] = float(v)
                rec["class"] = classes[int(p.argmax())]
                if len(classes) == 2:
                    rec["p"] = float(p[1])
            pending.clear()

        try:
            for i, y in enumerate(rows):
                h = min(chunk, ds.height - y)
                window = Window(0, y, ds.width, h)
                strip = ds.read(window=window)  # [C, h, W] in the scene's own data type
                strip_valid = _valid_mask(ds, strip, window, contract.nodata)
                for j, x in enumerate(cols):
                    w = min(chunk, ds.width - x)
                    raw, valid = strip[:, :, x : x + w], strip_valid[:, x : x + w]
                    rec: dict[str, Any] = {"row": i, "col": j, "x": x, "y": y, "width": w, "height": h,
                                           "valid_fraction": round(float(valid.mean()), 6),
                                           "skipped": False, "reason": None, "class": None,
                                           **{f"p_{c}": None for c in classes}}
                    if len(classes) == 2:
                        rec["p"] = None
                    records.append(rec)
                    reason = NO_VALID_PIXELS if not valid.any() else (
                        chunk_filter(raw, valid, fparams) if chunk_filter is not None else None)
                    if isinstance(reason, dict):
                        reason = _add_fields(rec, reason)
                    if reason is not None:
                        rec["skipped"], rec["reason"] = True, str(reason)
                        continue
                    pending.append((rec, _model_input(raw, valid, mean, std, chunk, size)))
                    if len(pending) == batch_size:
                        run_batch()
                del strip, strip_valid
                if on_chunk_row is not None:
                    on_chunk_row(i + 1, len(rows))
            if pending:
                run_batch()
        finally:
            model.train(was_training)

        n_skipped = sum(1 for r in records if r["skipped"])
        values = summarise(records, classes, sparams)
        try:
            json.dumps(values)
        except (TypeError, ValueError) as exc:
            raise MarsError(f"the scene summariser returned a value that is not JSON: {exc}") from None
        summary = {
            "scene": str(scene),
            "width": ds.width,
            "height": ds.height,
            "crs": ds.crs.to_wkt() if ds.crs else None,
            "classes": classes,
            "settings": {"chunk": chunk, "input_size": size, "overlap": overlap,
                         "filter": fparams, "summary": sparams},
            "n_chunks": len(records),
            "n_classified": len(records) - n_skipped,
            "n_skipped": n_skipped,
            "skip_reasons": _count(r["reason"] for r in records if r["skipped"]),
            "summary": values,
        }
        _write_all(finals, ds, records, summary)

    return ClassificationResult(geojson=finals[0], csv=finals[1], summary=finals[2], n_chunks=len(records),
                                n_classified=len(records) - n_skipped, n_skipped=n_skipped,
                                seconds=time.perf_counter() - start, summary_values=values)


def _model_input(raw: np.ndarray, valid: np.ndarray, mean: torch.Tensor, std: torch.Tensor, chunk: int,
                 size: int) -> torch.Tensor:
    """Normalised [C, size, size]: invalid pixels (and padding of a chunk cut by a scene
    smaller than it) become 0, the normalised mean; then an antialiased bilinear resample,
    so shrinking a chunk averages its pixels rather than picking every n-th one."""
    x = (torch.from_numpy(raw.astype(np.float32, copy=False)) - mean) / std
    x[:, ~torch.from_numpy(np.ascontiguousarray(valid))] = 0.0
    c, h, w = x.shape
    if (h, w) != (chunk, chunk):
        x = F.pad(x, (0, chunk - w, 0, chunk - h))
    if chunk != size:
        x = F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
    return x


def _add_fields(rec: dict[str, Any], note: dict[str, Any]) -> str | None:
    """Merge a filter's extra fields into the record; return its skip reason (or None)."""
    extra = {k: v for k, v in note.items() if k != "skip"}
    clash = sorted(set(extra) & set(rec))
    if clash:
        raise MarsError(f"the chunk filter returned fields that the core writes itself: {', '.join(clash)}")
    rec.update(extra)
    return note.get("skip")


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for it in items:
        out[it] = out.get(it, 0) + 1
    return out


def _write_all(finals: Sequence[Path], ds: DatasetReader, records: list[dict[str, Any]],
               summary: dict[str, Any]) -> None:
    """All three files under temporary names in the output directory, renamed at the end."""
    out_dir = finals[0].parent
    created = not out_dir.exists()
    out_dir.mkdir(exist_ok=True)
    tmps = [p.with_name(f".{p.name}.partial-{os.getpid()}") for p in finals]
    try:
        head: dict[str, Any] = {"type": "FeatureCollection"}
        if ds.crs is not None:
            head["crs"] = {"type": "name", "properties": {"name": ds.crs.to_wkt()}}
        head["features"] = [
            {"type": "Feature", "id": k + 1, "properties": rec,
             "geometry": {"type": "Polygon", "coordinates": [_footprint(ds, rec["x"], rec["y"], rec["width"],
                                                                         rec["height"])]}}
            for k, rec in enumerate(records)
        ]
        tmps[0].write_text(json.dumps(head) + "\n", encoding="utf-8")
        fields = list(dict.fromkeys(k for rec in records for k in rec))  # a filter's fields may vary
        with open(tmps[1], "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, restval="")
            writer.writeheader()
            for rec in records:
                writer.writerow({k: ("" if v is None else v) for k, v in rec.items()})
        tmps[2].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except BaseException:
        for t in tmps:
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    for t, final in zip(tmps, finals, strict=True):
        os.replace(t, final)
