"""Landslide benchmark: train every registered landslide model on MMLS train, select on val.

Writes ``landslide_benchmark.md`` and ``landslide_benchmark.csv`` to ``--out-dir`` with, per
model: validation mIoU, F1, precision, recall (whole-split, best epoch by val mIoU),
parameters, seconds per epoch (training + validation pass) and inference throughput
(patches/s, batch 16, 128x128x7) -- next to the paper's published figures, which are on the
*test* partition (region c), whereas ours are on the *validation* partition (region d).

    python3 benchmarks/bench_landslide.py --epochs 30 --data ../shared/data/mmls --out-dir bench-out
    nox -s bench -- landslide   # where the project's noxfile forwards to this script

Tracking is disabled (no MLflow run per model); checkpoints go to a temporary folder.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from mars_core.config import load_task_config
from mars_core.engine import train
from mars_landslide.plugin import MODEL_FACTORIES, TASK_YAML

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mmls"

#: Table 2 of Paheding et al. (WACV 2024), withheld TEST partition: (mIoU, F1, precision, recall).
PAPER_TEST: dict[str, tuple[float, float, float | None, float | None]] = {
    "marslsnet": (0.6878, 0.7831, 0.7983, 0.7684),
    "unet": (0.6479, 0.7519, None, None),
    "segformer": (0.6656, 0.7626, None, None),
    "deeplabv3plus": (0.6131, 0.7163, None, None),
    "pspnet": (0.5641, 0.6516, None, None),
    "swinunet (not registered)": (0.6583, 0.7602, None, None),
}


def throughput(model: torch.nn.Module, channels: int, batch: int = 16, repeats: int = 2) -> float:
    model.eval()
    x = torch.randn(batch, channels, 128, 128)
    with torch.no_grad():
        model(x[:2])
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return batch * repeats / (time.perf_counter() - start)


def run_one(name: str, args: argparse.Namespace, ckpt_root: Path) -> dict[str, object]:
    overrides = [
        f"model.name={name}", f"trainer.epochs={args.epochs}", "tracking.enabled=false",
        "trainer.progress=false", "trainer.eval_splits=[val]", f"trainer.checkpoint_dir={ckpt_root / name}",
        *args.set,
    ]
    if args.max_steps:
        overrides.append(f"trainer.max_steps_per_epoch={args.max_steps}")
    cfg = load_task_config(TASK_YAML, overrides=overrides, data_root=str(args.data))
    summary = train(cfg)
    val = summary.metrics.get("val", {})
    times = [h["epoch_time_s"] for h in summary.history if "epoch_time_s" in h]
    params = sum(p.numel() for p in summary.model.parameters())
    return {
        "model": name,
        "val_miou": val.get("miou"), "val_f1": val.get("f1"),
        "val_precision": val.get("precision"), "val_recall": val.get("recall"),
        "best_epoch": summary.best_epoch, "epochs": args.epochs,
        "params_M": params / 1e6,
        "s_per_epoch": sum(times) / max(len(times), 1),
        "infer_patches_per_s": throughput(summary.model, len(summary.contract.bands)),
        "val_miou_per_epoch": " ".join(f"{h.get('val/miou', float('nan')):.4f}" for h in summary.history),
    }


def fmt(v: object, nd: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def write_tables(rows: list[dict[str, object]], out: Path, command: str, args: argparse.Namespace) -> None:
    out.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0]) if rows else []
    tmp = out / "landslide_benchmark.csv.tmp"
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys + ["paper_test_miou", "paper_test_f1"])
        w.writeheader()
        for r in rows:
            p = PAPER_TEST.get(str(r["model"]))
            w.writerow({**r, "paper_test_miou": p[0] if p else "", "paper_test_f1": p[1] if p else ""})
    tmp.replace(out / "landslide_benchmark.csv")
    lines = [
        "# Landslide benchmark (MMLS)",
        "",
        f"- Command: `{command}`",
        f"- Date: {dt.date.today().isoformat()}; machine: {platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPU cores, torch {torch.__version__}",
        f"- Epochs: {args.epochs}" + (f", at most {args.max_steps} steps per epoch" if args.max_steps else "")
        + f"; extra overrides: {args.set or 'none'}",
        "- Ours: **validation partition** (31 patches, region d), best epoch by val mIoU.",
        "- Paper: **test partition** (256 patches, region c; withheld here), 100 epochs. Not comparable "
        "one-to-one: different region.",
        "",
        "| model | ours val mIoU | ours val F1 | ours val precision | ours val recall | best epoch "
        "| params (M) | s/epoch | infer patches/s | paper test mIoU | paper test F1 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = PAPER_TEST.get(str(r["model"]))
        lines.append(
            f"| {r['model']} | {fmt(r['val_miou'])} | {fmt(r['val_f1'])} | {fmt(r['val_precision'])} "
            f"| {fmt(r['val_recall'])} | {r['best_epoch']} | {fmt(r['params_M'], 3)} | {fmt(r['s_per_epoch'], 1)} "
            f"| {fmt(r['infer_patches_per_s'], 1)} | {fmt(p[0]) if p else '—'} | {fmt(p[1]) if p else '—'} |"
        )
    lines += ["", "Paper rows without a registered model here:", ""]
    for k, p in PAPER_TEST.items():
        if k not in {r["model"] for r in rows}:
            lines.append(f"- {k}: paper test mIoU {p[0]:.4f}, F1 {p[1]:.4f}")
    tmp = out / "landslide_benchmark.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out / "landslide_benchmark.md")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--models", default=",".join(MODEL_FACTORIES), help="comma-separated registered names")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out-dir", type=Path, default=Path("bench-out"))
    ap.add_argument("--max-steps", type=int, default=None, help="cap optimiser steps per epoch (smoke runs)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (1 is much faster than 2 on an oversubscribed machine)")
    ap.add_argument("--set", action="append", default=[], help="extra KEY=VALUE config override")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python3 benchmarks/bench_landslide.py " + " ".join(argv if argv is not None else sys.argv[1:])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            if name not in MODEL_FACTORIES:
                ap.error(f"unknown model {name!r}; available: {', '.join(MODEL_FACTORIES)}")
            print(f"== {name}", flush=True)
            rows.append(run_one(name, args, Path(tmp)))
            print(rows[-1], flush=True)
            write_tables(rows, args.out_dir, command, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
