"""No-change sanity check of an icefrag model on REAL HiRISE polar chips (issue 13, item 4).

There is no labelled real pair here, but there is real imagery: the polar chips of
``../shared/data/hirise-chips`` (8-bit browse crops). A chip paired with itself, with a
copy shifted by one pixel and brightened, or with the dataset's own brightness-changed
copy (``-brt``), shows NO change. A sound model marks (almost) nothing there and does not
output a constant. One POSITIVE case pastes three SYNTHETIC fragments (bright slab,
shadow below) into T2 of each real chip; the share of their slab pixels flagged is
reported. For each case this prints, over the chips, the share of pixels with
probability >= 0.5, the number of predicted components (8-connected, every component),
and the spread of the probabilities (a constant output has spread 0).

Each pair (the chips cropped to 224 x 224 px) goes through ``mars_core.raster.predict_scene``
as uint16 GeoTIFFs, the path of ``mars-core predict`` (robust normalisation from each
input's own percentiles), as ONE 224-px tile per chip whatever the model's tile size.

    python3 benchmarks/bench_icefrag_realchips.py --model models:/mars-icefrag/3 \\
        --model classical=models:/mars-icefrag/4 --chips ../shared/data/hirise-chips --n 12
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np

CROP = 224  # a multiple of 32 inside the 227-px chips


def polar_originals(root: Path, n: int) -> list[Path]:
    """Original (not rotated/flipped/brightened) polar chips with < 5 % no-data."""
    from PIL import Image

    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        name = r["file"]
        if abs(float(r["latitude"])) < 55 or name.count("-") != 1:
            continue
        a = np.asarray(Image.open(root / "chips" / name).convert("L"))
        if (a <= 3).mean() < 0.05:
            out.append(root / "chips" / name)
    return sorted(out)[:n]


def read_chip(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"))[:CROP, :CROP].astype(np.float64)


PASTE_AT = ((60, 60), (120, 150), (170, 80))  # centres of the pasted SYNTHETIC fragments


def pasted(t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """T2 = T1 with three SYNTHETIC fragments pasted in (bright 9 x 7 px slab, shadow 6 px
    below it at half brightness), and the slab mask: the one POSITIVE case."""
    yy, xx = np.mgrid[0 : t1.shape[0], 0 : t1.shape[1]]
    t2, slab = t1.copy(), np.zeros(t1.shape, dtype=bool)
    bright = min(255.0, float(np.percentile(t1, 98)) * 1.3)
    for cy, cx in PASTE_AT:
        s = ((yy - cy) / 3.5) ** 2 + ((xx - cx) / 4.5) ** 2 <= 1
        shadow = np.zeros_like(s)
        for k in range(1, 7):
            shadow |= np.roll(s, k, axis=0)
        t2[shadow & ~s] *= 0.5
        t2[s] = bright
        slab |= s
    return t2, slab


def cases(chip: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from scipy import ndimage

    t1 = read_chip(chip)
    shifted = ndimage.shift(t1, (1.0, -1.0), order=1, mode="nearest") * 1.2 + 10
    out = {"same chip": (t1, t1.copy()), "shift 1 px, x1.2 + 10 DN": (t1, shifted),
           "POSITIVE: 3 SYNTHETIC fragments pasted into T2": (t1, pasted(t1)[0])}
    brt = chip.with_name(chip.name.replace(".jpg", "-brt.jpg"))
    if brt.is_file():
        out["dataset's -brt copy"] = (t1, read_chip(brt))
    return out


def write(path: Path, a: np.ndarray) -> Path:
    import rasterio
    from rasterio.transform import from_origin

    from mars_icefrag.synthetic import MARS_STEREO_WKT

    with rasterio.open(path, "w", driver="GTiff", height=a.shape[0], width=a.shape[1], count=1, dtype="uint16",
                       crs=MARS_STEREO_WKT, transform=from_origin(0, 0, 0.25, 0.25)) as d:
        d.write(np.clip(np.round(a), 0, 1023).astype(np.uint16), 1)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="URI, or LABEL=URI; repeatable")
    ap.add_argument("--chips", default="../shared/data/hirise-chips")
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from mars_core.connected import components
    from mars_core.raster import predict_scene
    from mars_core.tracking.model_io import load_model

    torch.set_num_threads(1)
    chips = polar_originals(Path(args.chips), args.n)
    results = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for spec in args.model:
            label, _, uri = spec.rpartition("=")
            loaded = load_model(uri)
            label = label or uri
            per_case: dict[str, list[dict[str, float]]] = {}
            for i, chip in enumerate(chips):
                for case, (a, b) in cases(chip).items():
                    t1, t2 = write(tmp / f"{i}_t1.tif", a), write(tmp / f"{i}_t2.tif", b)
                    out = tmp / f"{i}_pred.tif"
                    predict_scene(loaded.model, loaded.contract, [t1, t2], out, overlap=0.0, progress=False,
                                  overwrite=True, probability="float32", tile=CROP)
                    import rasterio

                    with rasterio.open(out.with_suffix(".prob.tif")) as d:
                        p = d.read(1)
                    n_comp = components(p >= 0.5, 1)[1]
                    row = {"flagged": float((p >= 0.5).mean()), "components": n_comp, "p_sd": float(p.std()),
                           "p_max": float(p.max())}
                    if case.startswith("POSITIVE"):
                        slab = pasted(a)[1]
                        row["slab_recall"] = float((p[slab] >= 0.5).mean())
                    per_case.setdefault(case, []).append(row)
            for case, rows in per_case.items():
                res = {"model": label, "case": case, "chips": len(rows),
                       "flagged_mean": float(np.mean([r["flagged"] for r in rows])),
                       "flagged_max": float(np.max([r["flagged"] for r in rows])),
                       "components_mean": float(np.mean([r["components"] for r in rows])),
                       "p_sd_min": float(np.min([r["p_sd"] for r in rows])),
                       "p_max_median": float(np.median([r["p_max"] for r in rows]))}
                if "slab_recall" in rows[0]:
                    res["slab_recall_mean"] = float(np.mean([r["slab_recall"] for r in rows]))
                results.append(res)
                print(json.dumps(res), flush=True)
    print("| model | case (REAL chips) | chips | flagged share mean / max | components per chip |"
          " min prob. sd | median max prob. | pasted-slab recall |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        recall = f"{r['slab_recall_mean']:.3f}" if "slab_recall_mean" in r else "-"
        print(f"| {r['model']} | {r['case']} | {r['chips']} | {r['flagged_mean']:.4f} / {r['flagged_max']:.4f} | "
              f"{r['components_mean']:.1f} | {r['p_sd_min']:.4f} | {r['p_max_median']:.3f} | {recall} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
