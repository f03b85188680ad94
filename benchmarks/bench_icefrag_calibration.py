"""Real-vs-SYNTHETIC statistics behind the calibration of ``mars_icefrag.synthetic``.

Measures ``mars_icefrag.calibration.image_stats`` (DN mean/sd/percentiles, Immerkaer noise,
power-spectrum slope, autocorrelation length) on

* REAL: the original polar chips (|latitude| >= 55 deg; the rotated, flipped and
  brightened copies left out, as are chips with more than 20 % no-data) of
  ``../shared/data/hirise-chips`` (HiRISE browse crops, 8-bit, 227 px);
* SYNTHETIC: chip-sized (227 px) windows of T1 and T2 of SYNTHETIC scenes from the
  current generator, centred on the floor/debris zone and on the scarp.

Prints the 10th/50th/90th percentile over images of each statistic as a markdown table
(for BENCHMARK.md) and writes the same numbers as JSON with ``--json``.

    python3 benchmarks/bench_icefrag_calibration.py --chips ../shared/data/hirise-chips --scenes 12
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

KEYS = ("mean", "sd", "p2", "p50", "p98", "noise", "slope", "acf_length")


def real_stats(root: Path, min_abs_lat: float = 55.0) -> list[dict[str, float]]:
    from PIL import Image

    from mars_icefrag.calibration import image_stats

    out = []
    with open(root / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            name = row["file"]
            if abs(float(row["latitude"])) < min_abs_lat or name.count("-") != 1:  # copies: -r90, -fh, -brt ...
                continue
            a = np.asarray(Image.open(root / "chips" / name).convert("L"))
            if (a <= 3).mean() > 0.2:
                continue
            out.append(image_stats(a))
    return out


def synthetic_stats(n_scenes: int, size: int, seed: int) -> dict[str, list[dict[str, float]]]:
    """Stats of 227-px windows of T1 and T2: on the floor/debris zone (the part the DN map
    is calibrated on), and across the scarp (plateau, face and floor in one window)."""
    from mars_icefrag.calibration import image_stats
    from mars_icefrag.synthetic import generate_pair

    out: dict[str, list[dict[str, float]]] = {"floor": [], "scarp": []}
    c = 227
    x0 = (size - c) // 2
    for i in range(n_scenes):
        p = generate_pair(size=size, seed=seed * 1000 + i)
        for img in (p.t1, p.t2):
            for zone, y0 in (("floor", size - c - 8), ("scarp", max(0, size // 4 - c // 4))):
                out[zone].append(image_stats(img[y0 : y0 + c, x0 : x0 + c].astype(np.float64)))
    return out


def summary(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    arr = np.array([[r[k] for k in KEYS] for r in rows])
    return {k: [float(np.percentile(arr[:, j], q)) for q in (10, 50, 90)] for j, k in enumerate(KEYS)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chips", default="../shared/data/hirise-chips")
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    real = real_stats(Path(args.chips))
    synth = synthetic_stats(args.scenes, args.size, args.seed)
    res = {"real_polar_chips": {"n": len(real), **summary(real)},
           **{f"synthetic_{z}": {"n": len(v), **summary(v)} for z, v in synth.items()}}
    cols = ["real_polar_chips", "synthetic_floor", "synthetic_scarp"]
    print("| statistic | " + " | ".join(f"{c} (n={res[c]['n']}) p10 / p50 / p90" for c in cols) + " |")
    print("| --- | --- | --- | --- |")
    for k in KEYS:
        cells = [" / ".join(f"{v:.2f}" for v in res[c][k]) for c in cols]
        print(f"| {k} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
