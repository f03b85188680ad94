"""SYNTHETIC benchmark: whole-pair icefrag prediction throughput, before and after, in one run.

Usage: python benchmarks/bench_icefrag_throughput.py [--size 2048] [--repeats 2] [--threads 1,2]
       [--modes legacy,optimised,bfloat16] [--batch 8] [--model siamese-resnet50-aam]
       [--out bench-results/icefrag-throughput.json]

What it measures: ``mars_core.raster.predict_scene`` (the code behind ``mars-core predict
icefrag``) on a SYNTHETIC uint16 pair (10-bit DN in 16-bit containers, nodata 0, Mars
stereographic grid; written to a temporary directory) with the default icefrag model built
from the registry (random initialisation: speed does not depend on the weights), robust
normalisation, tile 256, overlap 0.25, channels_last, uint8 probability, as the CLI does.

Modes, all in this process, alternating (legacy, optimised, bfloat16, legacy, ...) so that each
round shares the machine's load of its moment, after one warm-up run of each on a 512-px pair:

* ``legacy``: ``optimise=False`` - the model as given, float32: the path before this benchmark;
* ``optimised``: the default - batch norms folded into the convolutions (float32, same outputs);
* ``bfloat16``: optimised plus ``precision="bfloat16"`` (opt-in: probabilities change slightly).

For each torch thread count (``--threads``, default 2 then 1) it reports the median wall time,
Mpx/s (scene megapixels / wall second), the median process CPU time, and the ratio of each
mode's median to legacy's (wall and CPU; the project measures speed as ratios against a
baseline run in the same process). The largest difference of the probability rasters from
legacy's is reported too (uint8 DN, 1 DN = 1/254). One extra legacy and optimised run under
cProfile (first thread count) splits wall time into the model's forward and everything else
(reading, normalising, tiling, stitching, writing, vectorising).
"""

from __future__ import annotations

import argparse
import cProfile
import inspect
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from bench_raster import MARS_WKT  # same Mars stereographic CRS as the raster benchmark
from rasterio.windows import Window

from mars_core.data import InputContract, Normalisation
from mars_core.plugins import get_registries
from mars_core.raster import predict_scene
from mars_core.tasks import TaskKind

MODES = {
    "legacy": {"optimise": False},
    "optimised": {"optimise": True},
    "bfloat16": {"optimise": True, "precision": "bfloat16"},
}


def write_pair(folder: Path, size: int, seed: int = 0) -> list[Path]:
    """SYNTHETIC pair: a smooth 10-bit DN field plus noise, T2 = T1 with noise and a few dark
    blobs (the model is untrained; the content only has to be image-like), one 256-row strip
    at a time."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(size=(size // 64 + 2, size // 64 + 2))
    paths = []
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint16", nodata=0, crs=MARS_WKT,
                   transform=rasterio.Affine(0.25, 0, 0, 0, -0.25, size * 0.25), tiled=True, blockxsize=256,
                   blockysize=256, compress="zstd", predictor=2)  # fmt: skip
    for date in (1, 2):
        path = folder / f"SYNTHETIC_T{date}.tif"
        with rasterio.open(path, "w", **profile) as ds:
            ds.update_tags(LABEL="SYNTHETIC")
            for y0 in range(0, size, 256):
                h = min(256, size - y0)
                rows = np.arange(y0, y0 + h) / 64
                cols = np.arange(size) / 64
                field = coarse[rows.astype(int)][:, cols.astype(int)]
                dn = 400 + 120 * field + 25 * rng.standard_normal((h, size))
                if date == 2:
                    dn[rng.random((h, size)) < 2e-4] -= 150
                ds.write(dn.clip(3, 1021).astype(np.uint16)[None], window=Window(0, y0, size, h))
        paths.append(path)
    return paths


def contract() -> InputContract:
    return InputContract(kind=TaskKind.CHANGE_DETECTION, bands=["hirise_red"], n_inputs=2, nodata=0,
                         normalisation=Normalisation.robust(1), tile_size=256)  # fmt: skip


def forward_seconds(prof: cProfile.Profile, model: torch.nn.Module) -> float:
    """Cumulative time in the model's top-level ``forward`` (the original or its folded copy:
    same class, same code)."""
    code = type(model).forward.__code__
    key_file, key_line = inspect.getsourcefile(type(model).forward), code.co_firstlineno
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    return sum(v[3] for (f, line, name), v in stats.items()
               if name == "forward" and line == key_line and f == key_file)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048,
                    help="pair side in px; per-run fixed costs (folding ~1 s, a float32 reference batch for "
                         "bfloat16) weigh on small pairs, not on a HiRISE pair")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated")
    ap.add_argument("--modes", default="legacy,optimised,bfloat16")
    ap.add_argument("--batch", type=int, default=8, help="batch size (the CLI default is 8)")
    ap.add_argument("--overlap", type=float, default=0.25, help="the CLI default is 0.25")
    ap.add_argument("--model", default="siamese-resnet50-aam")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile split")
    ap.add_argument("--out", type=Path, default=Path("bench-results/icefrag-throughput.json"))
    args = ap.parse_args()
    modes = args.modes.split(",")
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    threads = [int(t) for t in args.threads.split(",")]
    torch.set_num_interop_threads(1)

    from rich.console import Console
    from rich.table import Table

    console = Console()
    torch.manual_seed(0)
    model = get_registries().models.get(args.model)(in_channels=1).eval()
    load_before = os.getloadavg()
    report: dict = {"label": "SYNTHETIC", "model": args.model, "size": args.size, "runs": {}, "ratios": {},
                    "config": {"tile": 256, "overlap": args.overlap, "batch": args.batch, "repeats": args.repeats,
                               "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                               "cpu_count": os.cpu_count(),
                               "cpu_capability": torch.backends.cpu.get_cpu_capability()}}  # fmt: skip
    table = Table(title=f"SYNTHETIC icefrag pair {args.size}x{args.size}: whole-pair prediction ({args.model})")
    for col in ("threads", "mode", "wall s (median)", "Mpx/s", "s/MP", "CPU s", "speed-up wall", "speed-up CPU",
                "max |dp| vs legacy"):
        table.add_column(col)
    with tempfile.TemporaryDirectory(prefix="bench-icefrag-tp-") as tmp:
        work = Path(tmp)
        inputs = write_pair(work, args.size)
        (work / "warm").mkdir()
        warm_inputs = write_pair(work / "warm", 512, seed=1)
        c = contract()

        def once(mode: str, tag: str, pair: list[Path] = inputs) -> tuple[float, float, object]:
            t0, c0 = time.perf_counter(), time.process_time()
            res = predict_scene(model, c, pair, work / f"{mode}-{tag}.tif", batch_size=args.batch,
                                overlap=args.overlap, progress=False, overwrite=True, **MODES[mode])
            return time.perf_counter() - t0, time.process_time() - c0, res

        for n_threads in threads:
            torch.set_num_threads(n_threads)
            for mode in modes:  # warm-up (allocator, oneDNN primitive caches)
                once(mode, "warm", warm_inputs)
            runs: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            diffs: dict[str, float] = {}
            for r in range(args.repeats):
                for mode in modes:
                    wall, cpu, res = once(mode, f"t{n_threads}-r{r}")
                    runs[mode].append((wall, cpu))
                    console.print(f"threads {n_threads} round {r + 1}: {mode} {wall:.1f} s wall, {cpu:.1f} s CPU "
                                  f"{list(res.optimisations)} {list(res.warnings)}")
                    if r == 0 and "legacy" in modes:
                        with rasterio.open(res.probability) as a, \
                                rasterio.open(work / f"legacy-t{n_threads}-r0.prob.tif") as b:
                            diffs[mode] = float(np.abs(a.read(1).astype(int) - b.read(1).astype(int)).max()) / 254
            mp = args.size * args.size / 1e6
            med = {m: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for m, v in runs.items()}
            base = med.get("legacy", med[modes[0]])
            for m in modes:
                wall, cpu = med[m]
                table.add_row(str(n_threads), m, f"{wall:.1f}", f"{mp / wall:.3f}", f"{wall / mp:.1f}", f"{cpu:.1f}",
                              f"{base[0] / wall:.2f}x", f"{base[1] / cpu:.2f}x",
                              f"{diffs.get(m, float('nan')):.4f}")  # fmt: skip
            report["runs"][str(n_threads)] = {m: {"wall_s": [w for w, _ in v], "cpu_s": [c for _, c in v],
                                                  "median_wall_s": med[m][0], "median_cpu_s": med[m][1],
                                                  "mpx_per_s": mp / med[m][0], "max_prob_diff_vs_legacy": diffs.get(m)}
                                              for m, v in runs.items()}  # fmt: skip
            report["ratios"][str(n_threads)] = {m: {"wall": base[0] / med[m][0], "cpu": base[1] / med[m][1]}
                                                for m in modes}  # fmt: skip
        if not args.no_profile:
            torch.set_num_threads(threads[0])
            split = {}
            for mode in [m for m in ("legacy", "optimised") if m in modes]:
                prof = cProfile.Profile()
                prof.enable()
                wall, _, _ = once(mode, "profile")
                prof.disable()
                fwd = forward_seconds(prof, model)
                split[mode] = {"wall_s": wall, "forward_s": fwd, "other_s": wall - fwd}
                console.print(f"cProfile {mode} ({threads[0]} threads): {wall:.1f} s, model forward {fwd:.1f} s "
                              f"({fwd / wall:.0%}), reading/normalising/tiling/stitching/writing/vectorising "
                              f"{wall - fwd:.1f} s")
            report["profile_split"] = split
    report["config"]["load_average_before"] = load_before
    report["config"]["load_average_after"] = os.getloadavg()
    console.print(table)
    console.print(f"load average (1/5/15 min) before {load_before}, after {report['config']['load_average_after']} "
                  f"on {os.cpu_count()} CPUs: a shared machine inflates wall times; compare the ratios")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
