"""SYNTHETIC benchmark of streaming whole-scene inference (mars_core.raster.predict_scene).

Usage: python benchmarks/bench_raster.py [--size 8192] [--device cpu] [--wide 20000]
       [--probability uint8|float32] [--compare-float32] [--repeats N]
       [--out bench-results/raster.json]

What it measures, on a SYNTHETIC uint16 single-band scene in a Mars CRS (bright disks on a
noisy background, written block by block to a temporary directory):

(a) streaming throughput of predict_scene (read windows, normalise, forward, centre-crop,
    write two compressed GeoTIFFs, vectorise to GeoJSON) in scene megapixels per second;
(b) the bare forward pass of the same model over the same tiles held in memory (same number
    of tiles, batch size, torch threads and memory layout: channels_last unless
    --no-channels-last, as predict_scene); overhead = streaming / bare - 1; with --repeats N
    the big-scene streaming and bare runs alternate N times and the median of the N overheads
    is reported (each pair shares the machine's load of its moment);
(c) peak RSS of a child process running predict_scene only, for two scenes four times apart
    in pixel count (--size and --size/2 on a side); ratio = big / small;
(d) with --wide W: peak RSS on a 1024-row scene W px wide (a HiRISE RED product is about
    20,000 px wide): memory depends on the scene's width, since full-width strips are held.

Each measurement runs in its own child process so that peak RSS and warm-up are comparable.
The model is a fixed 4-layer CNN of width 16: conv3x3(1->16)-ReLU-conv3x3(16->16)-ReLU-
conv3x3(16->16)-ReLU-conv1x1(16->1), seeded weights, receptive radius 3 px (well inside the
16 px margin that overlap 0.125 of a 256 px tile gives); the last layer is calibrated so
that disks are detected and the background is not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from mars_core.data import InputContract, Normalisation
from mars_core.tasks import TaskKind

MARS_WKT = (
    'PROJCS["Oblique_Stereographic",GEOGCS["GCS_D_MARS",DATUM["MARS",SPHEROID["MARS",3396190,0]],'
    'PRIMEM["Reference Meridian",0],UNIT["degree",0.0174532925199433]],PROJECTION["Stereographic"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],'
    'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
)
BACKGROUND, CONTRAST, NOISE = 20000.0, 15000.0, 800.0
MODEL_DESC = "4-layer CNN width 16: conv3x3 1->16, conv3x3 16->16, conv3x3 16->16 (ReLU), conv1x1 16->1"


def build_model() -> torch.nn.Module:
    """Fixed seeded weights; final layer calibrated on constant background / disk tiles."""
    g = torch.Generator().manual_seed(1234)
    layers = [
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 1, 1),
    ]
    model = torch.nn.Sequential(*layers).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        feats = model[:-1]
        last = model[-1]
        contract = make_contract(256)
        bg = contract.normalisation.apply(torch.full((1, 1, 8, 8), BACKGROUND))
        fg = contract.normalisation.apply(torch.full((1, 1, 8, 8), BACKGROUND + CONTRAST))
        f_bg, f_fg = feats(bg)[0, :, 4, 4], feats(fg)[0, :, 4, 4]
        w = f_fg - f_bg  # project on the difference: disks score high
        scale = 8.0 / float(w @ (f_fg - f_bg))
        last.weight.copy_((w * scale).view(1, 16, 1, 1))
        mid = (f_fg + f_bg) / 2
        last.bias.fill_(-float(last.weight.view(-1) @ mid))
    return model


def make_contract(tile: int) -> InputContract:
    return InputContract(
        kind=TaskKind.SEGMENTATION,
        bands=["hirise_red"],
        normalisation=Normalisation(mean=[BACKGROUND], std=[5000.0]),
        tile_size=tile,
    )


def write_scene(path: Path, size: int, seed: int = 0, width: int | None = None) -> None:
    """SYNTHETIC scene (``size`` rows, ``width`` or ``size`` columns) written one 256-row
    strip at a time (never whole in memory)."""
    height, width = size, width or size
    rng = np.random.default_rng(seed)
    cell = 128
    ny, nx = height // cell, width // cell
    cx = (np.arange(nx)[None, :] * cell + rng.uniform(20, cell - 20, (ny, nx))).astype(int)
    cy = (np.arange(ny)[:, None] * cell + rng.uniform(20, cell - 20, (ny, nx))).astype(int)
    rad = rng.uniform(3, 18, (ny, nx))
    present = rng.random((ny, nx)) < 0.5
    profile = dict(
        driver="GTiff", width=width, height=height, count=1, dtype="uint16", nodata=0, crs=MARS_WKT,
        transform=rasterio.Affine(0.25, 0, 0, 0, -0.25, height * 0.25), tiled=True, blockxsize=256,
        blockysize=256, compress="zstd", predictor=2,
    )  # fmt: skip
    with rasterio.open(path, "w", **profile) as ds:
        for y0 in range(0, height, 256):
            h = min(256, height - y0)
            strip = BACKGROUND + rng.normal(0, NOISE, (h, width))
            for i, j in zip(*np.nonzero(present), strict=True):
                r = rad[i, j]
                if cy[i, j] + r < y0 or cy[i, j] - r >= y0 + h:
                    continue
                ys = np.arange(max(y0, int(cy[i, j] - r)), min(y0 + h, int(cy[i, j] + r) + 1))
                xs = np.arange(max(0, int(cx[i, j] - r)), min(width, int(cx[i, j] + r) + 1))
                inside = (ys[:, None] - cy[i, j]) ** 2 + (xs[None, :] - cx[i, j]) ** 2 <= r * r
                sub = strip[ys[0] - y0 : ys[-1] - y0 + 1, xs[0] : xs[-1] + 1]
                sub[inside] += CONTRAST
            ds.write(np.clip(strip, 1, 65535).astype(np.uint16)[None], window=Window(0, y0, width, h))


def _rss_now_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child_stream(args: argparse.Namespace) -> dict:
    from mars_core.raster import predict_scene

    model = build_model().to(args.device)
    with torch.inference_mode():  # warm-up, as in the bare run
        model(torch.zeros(args.batch, 1, args.tile, args.tile, device=args.device))
    rss_before = _rss_now_kb()
    out = Path(args.workdir) / f"pred-{os.getpid()}.tif"
    t0, c0 = time.perf_counter(), time.process_time()
    res = predict_scene(
        model, make_contract(args.tile), [args.scene], out, overlap=args.overlap, batch_size=args.batch,
        device=args.device, progress=False, channels_last=args.channels_last, probability=args.probability,
    )  # fmt: skip
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sizes = {p.name: p.stat().st_size for p in res.paths}
    for p in res.paths:
        p.unlink()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "megapixels": res.megapixels,
        "mpx_per_s": res.megapixels / seconds,
        "n_tiles": res.n_tiles,
        "n_polygons": res.n_polygons,
        "peak_rss_mib": peak / 1024,
        "rss_before_predict_mib": rss_before / 1024,
        "output_bytes": sizes,
    }


def child_bare(args: argparse.Namespace) -> dict:
    """Same tiles (same grid as predict_scene), normalised, in memory; forward only."""
    from mars_core.raster.tiling import make_grid

    contract = make_contract(args.tile)
    with rasterio.open(args.scene) as ds:
        grid = make_grid(ds.height, ds.width, args.tile, args.overlap)
        scene = ds.read(1)
    t = args.tile
    tiles = torch.empty(grid.n_tiles, 1, t, t)
    k = 0
    for y in grid.rows.starts:
        for x in grid.cols.starts:
            tiles[k, 0] = torch.from_numpy(scene[y : y + t, x : x + t].astype(np.float32))
            k += 1
    del scene
    tiles = contract.normalisation.apply(tiles)
    model = build_model().to(args.device)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model.to(memory_format=layout)
    with torch.inference_mode():
        model(tiles[: args.batch].to(args.device).contiguous(memory_format=layout))  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, grid.n_tiles, args.batch):
            model(tiles[i : i + args.batch].to(args.device).contiguous(memory_format=layout))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "n_tiles": grid.n_tiles,
        "megapixels": grid.height * grid.width / 1e6,
    }


def _prob_mib(run: dict) -> float:
    return sum(v for k, v in run["output_bytes"].items() if k.endswith(".prob.tif")) / 2**20


def run_child(mode: str, scene: Path, workdir: Path, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable, __file__, f"--child-{mode}", str(scene), "--workdir", str(workdir),
        "--device", args.device, "--threads", str(args.threads), "--tile", str(args.tile),
        "--overlap", str(args.overlap), "--batch", str(args.batch),
        "--channels-last" if args.channels_last else "--no-channels-last", "--probability", args.probability,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child {mode} failed on {scene}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="big scene side in px (>= 8192 for the record)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--wide", type=int, default=0,
                    help="also measure peak RSS on a 1024-row scene this many px wide (0: skip)")
    ap.add_argument("--out", type=Path, default=Path("bench-results/raster.json"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=float, default=0.125)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                    help="memory layout of both the streaming run and the bare baseline")
    ap.add_argument("--probability", choices=("uint8", "float32"), default="uint8",
                    help="probability raster format of the streaming runs (predict_scene's default: uint8)")
    ap.add_argument("--compare-float32", action="store_true",
                    help="also stream the big scene with --probability float32 (the format before uint8)")
    ap.add_argument("--repeats", type=int, default=1, help="alternating big-scene stream/bare pairs")
    ap.add_argument("--workdir", help=argparse.SUPPRESS)
    ap.add_argument("--child-stream", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-bare", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)

    if args.child_stream or args.child_bare:
        args.scene = args.child_stream or args.child_bare
        result = child_stream(args) if args.child_stream else child_bare(args)
        print(json.dumps(result))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    small = args.size // 2
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-raster-") as tmp:
        work = Path(tmp)
        scenes = {}
        for s in (small, args.size):
            t0 = time.perf_counter()
            scenes[s] = work / f"synthetic-{s}.tif"
            write_scene(scenes[s], s)
            console.print(f"SYNTHETIC scene {s}x{s} written in {time.perf_counter() - t0:.1f} s")
        stream_small = run_child("stream", scenes[small], work, args)
        console.print(f"streaming {small}^2 done in {stream_small['seconds']:.1f} s")
        pairs = []
        for _ in range(max(1, args.repeats)):
            s_run = run_child("stream", scenes[args.size], work, args)
            console.print(f"streaming {args.size}^2 ({args.probability}) done in {s_run['seconds']:.1f} s")
            b_run = run_child("bare", scenes[args.size], work, args)
            console.print(f"bare forward {args.size}^2 done in {b_run['seconds']:.1f} s")
            pairs.append((s_run, b_run))
        # the pair with the median wall overhead stands for the run, the upper of the two middle
        # ones for an even count (conservative); all pairs go to the JSON
        pairs.sort(key=lambda p: p[0]["seconds"] / p[1]["seconds"])
        stream_big, bare = pairs[len(pairs) // 2]
        float32_big = None
        if args.compare_float32:
            f_args = argparse.Namespace(**{**vars(args), "probability": "float32"})
            float32_big = run_child("stream", scenes[args.size], work, f_args)
            console.print(f"streaming {args.size}^2 (float32) done in {float32_big['seconds']:.1f} s")
        wide = None
        if args.wide:
            wide_scene = work / f"synthetic-1024x{args.wide}.tif"
            write_scene(wide_scene, 1024, width=args.wide)
            wide = run_child("stream", wide_scene, work, args)
            wide["shape"] = [1024, args.wide]
            console.print(f"streaming 1024x{args.wide} done in {wide['seconds']:.1f} s")

    load_after = os.getloadavg()
    overhead = stream_big["seconds"] / bare["seconds"] - 1
    overhead_cpu = stream_big["cpu_seconds"] / bare["cpu_seconds"] - 1
    rss_ratio = stream_big["peak_rss_mib"] / stream_small["peak_rss_mib"]
    delta_small = stream_small["peak_rss_mib"] - stream_small["rss_before_predict_mib"]
    delta_big = stream_big["peak_rss_mib"] - stream_big["rss_before_predict_mib"]
    report = {
        "label": "SYNTHETIC",
        "model": MODEL_DESC,
        "config": {
            "tile": args.tile,
            "overlap": args.overlap,
            "batch": args.batch,
            "device": args.device,
            "torch_threads": args.threads,
            "channels_last": args.channels_last,
            "repeats": args.repeats,
            "torch": torch.__version__,
            "rasterio": rasterio.__version__,
            "gdal": rasterio.__gdal_version__,
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },  # fmt: skip
        "streaming": {str(small): stream_small, str(args.size): stream_big},
        "bare_forward": bare,
        "overhead": overhead,
        "overhead_cpu_time": overhead_cpu,
        "overhead_all_pairs": [p[0]["seconds"] / p[1]["seconds"] - 1 for p in pairs],
        "probability": args.probability,
        "streaming_float32": float32_big,
        "overhead_float32": None if float32_big is None else float32_big["seconds"] / bare["seconds"] - 1,
        "peak_rss_ratio": rss_ratio,
        "predict_rss_growth_mib": {str(small): delta_small, str(args.size): delta_big},
        "wide": wide,
        "goals": {"overhead_lt": 0.10, "peak_rss_ratio_within": 0.10},
        "met": {"overhead": overhead < 0.10, "peak_rss_ratio": abs(rss_ratio - 1) <= 0.10},
    }
    table = Table(title=f"SYNTHETIC raster streaming benchmark ({MODEL_DESC})")
    for col in ("measure", f"{small}x{small}", f"{args.size}x{args.size}", "goal"):
        table.add_column(col)
    table.add_row("tiles", str(stream_small["n_tiles"]), str(stream_big["n_tiles"]), "")
    table.add_row("polygons", str(stream_small["n_polygons"]), str(stream_big["n_polygons"]), "")
    table.add_row("streaming s", f"{stream_small['seconds']:.1f}", f"{stream_big['seconds']:.1f}", "")
    table.add_row("streaming Mpx/s", f"{stream_small['mpx_per_s']:.2f}", f"{stream_big['mpx_per_s']:.2f}", "")
    table.add_row("bare forward s", "", f"{bare['seconds']:.1f}", "")
    table.add_row("bare forward CPU s", "", f"{bare['cpu_seconds']:.1f}", "")
    table.add_row("streaming CPU s", f"{stream_small['cpu_seconds']:.1f}", f"{stream_big['cpu_seconds']:.1f}", "")
    table.add_row(f"overhead wall (stream/bare - 1), {args.probability}", "", f"{overhead:+.1%}", "< 10%")
    table.add_row("overhead CPU time", "", f"{overhead_cpu:+.1%}", "")
    if float32_big is not None:
        table.add_row("overhead wall, float32 probability", "",
                      f"{float32_big['seconds'] / bare['seconds'] - 1:+.1%}", "")
        table.add_row("probability file MiB uint8 / float32", "",
                      f"{_prob_mib(stream_big):.1f} / {_prob_mib(float32_big):.1f}", "")
    table.add_row("peak RSS MiB", f"{stream_small['peak_rss_mib']:.0f}", f"{stream_big['peak_rss_mib']:.0f}", "")
    table.add_row("peak RSS ratio big/small", "", f"{rss_ratio:.3f}", "within 10%")
    table.add_row("RSS growth during predict MiB", f"{delta_small:.0f}", f"{delta_big:.0f}", "")
    console.print(table)
    if wide is not None:
        growth = wide["peak_rss_mib"] - wide["rss_before_predict_mib"]
        console.print(
            f"1024x{args.wide} scene: peak RSS {wide['peak_rss_mib']:.0f} MiB, growth during predict "
            f"{growth:.0f} MiB (vs {delta_big:.0f} MiB at {args.size} px wide), {wide['mpx_per_s']:.2f} Mpx/s"
        )
    console.print(
        f"load average (1/5/15 min) before {load_before}, after {load_after} on {os.cpu_count()} CPUs: "
        "a shared machine inflates wall times; CPU-time overhead is the steadier figure"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
