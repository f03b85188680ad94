"""SYNTHETIC benchmark: whole-scene prediction with NHWC (channels_last) against NCHW tensors.

Usage: python benchmarks/bench_layout.py [--size 1024] [--repeats 3] [--threads 2]
       [--models icefrag:siamese-resnet50-aam,landslide:segformer,landslide:unet]
       [--out bench-results/layout.json]

``mars_core.raster.predict_scene`` runs models on channels_last tensors by default. This
measures what that buys for the task models, end to end (read, forward, write, vectorise),
on SYNTHETIC random scenes in a Mars CRS: a single-band uint16 pair for change detection,
a 7-band float32 scene for segmentation. Weights are the factories' random initialisation
(speed does not depend on them). Both layouts run in the same process, alternating
(NCHW, NHWC, NCHW, ...), after one warm-up run each; the figure is the ratio of medians.
The two layouts' probability rasters are compared too: they must agree to float rounding.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from bench_raster import MARS_WKT  # same Mars stereographic CRS as the raster benchmark

from mars_core.data import InputContract, Normalisation
from mars_core.plugins import get_registries
from mars_core.raster import predict_scene
from mars_core.tasks import TaskKind

KINDS = {"icefrag": (TaskKind.CHANGE_DETECTION, 1, "uint16"), "landslide": (TaskKind.SEGMENTATION, 7, "float32")}


def write_random_scene(path: Path, size: int, bands: int, dtype: str, seed: int) -> Path:
    """SYNTHETIC: smooth random field plus noise, so models see structure, not only noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(bands, size // 32 + 1, size // 32 + 1))
    field = np.kron(coarse, np.ones((32, 32)))[:, :size, :size] + 0.3 * rng.normal(size=(bands, size, size))
    data = (20000 + 3000 * field).clip(1, 65535) if dtype == "uint16" else field
    profile = dict(driver="GTiff", width=size, height=size, count=bands, dtype=dtype, crs=MARS_WKT,
                   transform=rasterio.Affine(0.25, 0, 0, 0, -0.25, size * 0.25), tiled=True,
                   blockxsize=256, blockysize=256, compress="zstd")  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data.astype(dtype))
    return path


def contract_for(task: str) -> InputContract:
    kind, bands, dtype = KINDS[task]
    mean, std = (20000.0, 3000.0) if dtype == "uint16" else (0.0, 1.0)
    return InputContract(kind=kind, bands=[f"b{i}" for i in range(bands)],
                         normalisation=Normalisation(mean=[mean] * bands, std=[std] * bands), tile_size=256,
                         n_inputs=2 if kind is TaskKind.CHANGE_DETECTION else 1)  # fmt: skip


def build(task: str, name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    factory = get_registries().models.get(name)
    return factory(in_channels=KINDS[task][1])


def measure(task: str, name: str, inputs: list[Path], work: Path, args: argparse.Namespace) -> dict:
    model, contract = build(task, name), contract_for(task)

    def once(nhwc: bool, tag: str) -> tuple[float, Path]:
        res = predict_scene(model, contract, inputs, work / f"{name}-{tag}.tif", batch_size=args.batch,
                            device="cpu", channels_last=nhwc, progress=False, overwrite=True)  # fmt: skip
        if res.warnings:
            raise SystemExit(f"{name}: unexpected warnings {res.warnings}")
        return res.seconds, res.probability

    once(False, "warm-nchw")
    once(True, "warm-nhwc")
    times: dict[str, list[float]] = {"nchw": [], "nhwc": []}
    for _ in range(args.repeats):
        t, p_nchw = once(False, "nchw")
        times["nchw"].append(t)
        t, p_nhwc = once(True, "nhwc")
        times["nhwc"].append(t)
    with rasterio.open(p_nchw) as a, rasterio.open(p_nhwc) as b:
        diff = float(np.nanmax(np.abs(a.read(1) - b.read(1))))
    nchw, nhwc = statistics.median(times["nchw"]), statistics.median(times["nhwc"])
    return {"task": task, "model": name, "megapixels": args.size**2 / 1e6, "nchw_s": times["nchw"],
            "nhwc_s": times["nhwc"], "median_nchw_s": nchw, "median_nhwc_s": nhwc, "speedup": nchw / nhwc,
            "max_abs_prob_diff": diff}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--models", default="icefrag:siamese-resnet50-aam,landslide:segformer,landslide:unet")
    ap.add_argument("--out", type=Path, default=Path("bench-results/layout.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-layout-") as tmp:
        work = Path(tmp)
        for item in args.models.split(","):
            task, name = item.split(":")
            _, bands, dtype = KINDS[task]
            n_inputs = 2 if KINDS[task][0] is TaskKind.CHANGE_DETECTION else 1
            inputs = [write_random_scene(work / f"{task}-{i}.tif", args.size, bands, dtype, seed=i)
                      for i in range(n_inputs)]  # fmt: skip
            t0 = time.perf_counter()
            row = measure(task, name, inputs, work, args)
            rows.append(row)
            print(f"{task}:{name}: NCHW {row['median_nchw_s']:.1f} s, NHWC {row['median_nhwc_s']:.1f} s, "
                  f"speedup {row['speedup']:.2f}x, max |prob diff| {row['max_abs_prob_diff']:.1e} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    report = {"label": "SYNTHETIC", "size": args.size, "threads": args.threads, "batch": args.batch,
              "repeats": args.repeats, "torch": torch.__version__, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "rows": rows}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
