"""A SYNTHETIC radiometric stress copy of an icefrag data folder (issue 13, item 1).

Copies ``SRC`` (``t1/``, ``t2/``, ``mask/``, ``SYNTHETIC.json``) to ``DST`` and passes every
T2 through a strong non-linear tone curve, ``T2' = 0.8 * 400 * (DN / 400) ** 0.6 + 5``: a
two-point (percentile) stretch cannot undo it, a rank-based or fitted match can. Evaluate a
model on both folders with ``mars-core evaluate icefrag --data DST --split all``.

    python3 benchmarks/bench_icefrag_tone.py SRC DST
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

CURVE = "T2 = 0.8*400*(DN/400)**0.6 + 5"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    args = ap.parse_args()
    import rasterio

    if args.dst.exists():
        raise SystemExit(f"{args.dst} exists")
    shutil.copytree(args.src, args.dst)
    for f in sorted((args.dst / "t2").glob("*.tif")):
        with rasterio.open(f) as d:
            profile, a, tags = d.profile, d.read(1).astype(np.float64), d.tags()
        b = 0.8 * 400 * (a / 400) ** 0.6 + 5
        with rasterio.open(f, "w", **profile) as d:
            d.write(np.clip(np.round(b), 3, 1021).astype(np.uint16), 1)
            d.update_tags(**tags, STRESS=CURVE)
    meta = json.loads((args.dst / "SYNTHETIC.json").read_text())
    meta["stress"] = f"{CURVE} (SYNTHETIC)"
    (args.dst / "SYNTHETIC.json").write_text(json.dumps(meta, indent=1))
    print(f"wrote {args.dst} (SYNTHETIC, T2 through {CURVE})")


if __name__ == "__main__":
    main()
