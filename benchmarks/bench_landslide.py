"""Landslide benchmark: train every registered landslide model on MMLS train, select on val.

Writes ``landslide_benchmark.md`` and ``landslide_benchmark.csv`` to ``--out-dir`` with, per
model: validation mIoU, F1, precision, recall (whole-split, best epoch by val mIoU),
parameters, seconds per epoch (training + validation pass) and inference throughput
(patches/s, batch 16, 128x128x7) -- next to the paper's published figures, which are on the
*test* partition (region c), whereas ours are on the *validation* partition (region d).

    python3 benchmarks/bench_landslide.py --epochs 30 --data ../shared/data/mmls --out-dir bench-out
    nox -s bench -- landslide   # where the project's noxfile forwards to this script

Tracking is disabled (no MLflow run per model); checkpoints go to a temporary folder.

``--cv K``: spatial K-fold cross-validation over train + val instead (how the default recipe
is chosen; issue 12). Every recipe of ``--recipes`` is trained once per fold of a spatial
split of the pooled partitions (blocks of the R_C patch grid with a gap,
``mars_landslide.cv``) for the same fixed number of epochs and judged on the held-out fold
only (whole-fold pixel counts; the weights kept are those of the lowest training loss, so
the held-out fold never picks anything inside a run). ``--baselines`` adds all-background
and a one-channel threshold fitted on the training folds. Each (recipe, fold) is one JSON
line in ``OUT/cv_runs.jsonl`` (reruns skip what is there); held-out probabilities are kept
(``OUT/probs``) so post-hoc ensembles of recipes are scored without training again;
``--report`` writes ``OUT/cv_summary.{csv,md}`` (mean ± sd over folds).

    OMP_NUM_THREADS=1 python3 benchmarks/bench_landslide.py --cv 5 --epochs 8 --threads 1 \
        --recipes segformer,segformer-lovasz --baselines --out-dir bench-cv
    python3 benchmarks/bench_landslide.py --cv 5 --report --out-dir bench-cv
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mars_core.config import load_task_config
from mars_core.engine import train
from mars_landslide.mmls import MMLSSource
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
        # the round-1 protocol: train partition only, best epoch by val mIoU (optimistic)
        "data.train_on=[train]", "trainer.monitor=val/miou", "trainer.mode=max",
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


#: Recipe name -> overrides of the default YAML. Everything not named is the default recipe
#: (BCE, Adam 1e-3, 1 warm-up epoch + cosine, batch 16, weight_decay 1e-4, 64-px crops +
#: flips/rot90 + optical jitter, train-partition mean/std normalisation; MiT drop_path 0.1).
#: Every recipe names its model: the YAML's model changed (segformer -> unet) after the CV.
RECIPES: dict[str, list[str]] = {
    "segformer": ["model.name=segformer"],
    "segformer-dice": ["model.name=segformer", "loss.name=dice"],
    "segformer-bce_dice": ["model.name=segformer", "loss.name=bce_dice"],
    "segformer-lovasz": ["model.name=segformer", "loss.name=lovasz"],
    "segformer-wd0": ["model.name=segformer", "trainer.weight_decay=0"],
    "segformer-wd1e-2": ["model.name=segformer", "trainer.weight_decay=0.01"],
    "segformer-dropout0.2": ["model.name=segformer", "model.dropout=0.2"],
    "segformer-droppath0": ["model.name=segformer", "model.drop_path=0.0"],
    "segformer-droppath0.3": ["model.name=segformer", "model.drop_path=0.3"],
    "segformer-norm_none": ["model.name=segformer", "data.normalise=none"],
    "segformer-norm_robust": ["model.name=segformer", "data.normalise=robust"],
    "segformer-nocrop": ["model.name=segformer", "data.train_crop=null"],
    "segformer-seed1": ["model.name=segformer", "trainer.seed=1"],
    "segformer-seed2": ["model.name=segformer", "trainer.seed=2"],
    "ensemble-segformer2": ["model.name=ensemble", "model.members=[segformer,segformer]"],
    "unet": ["model.name=unet"],
    "deeplabv3plus": ["model.name=deeplabv3plus"],
    "resunet": ["model.name=resunet"],
    "pspnet": ["model.name=pspnet"],
    "marslsnet": ["model.name=marslsnet"],
    "marslsnet-paper": ["@marslsnet-paper"],
}


def confusion(pred: np.ndarray, mask: np.ndarray) -> dict[str, int]:
    """Pixel counts over a whole fold (pred, mask boolean, same shape)."""
    p, m = pred.astype(bool), mask.astype(bool)
    return {"tp": int((p & m).sum()), "fp": int((p & ~m).sum()), "fn": int((~p & m).sum()),
            "tn": int((~p & ~m).sum())}


def scores(c: dict[str, int]) -> dict[str, float]:
    """mIoU (mean of landslide and background IoU), F1, precision, recall from counts."""
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    iou, iou_bg = ratio(tp, tp + fp + fn), ratio(tn, tn + fp + fn)
    return {"miou": (iou + iou_bg) / 2, "iou": iou, "f1": ratio(2 * tp, 2 * tp + fp + fn),
            "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn)}


def fit_threshold(images: np.ndarray, masks: np.ndarray, bins: int = 256) -> tuple[int, float, bool, float]:
    """Best (channel, threshold, above?) by training mIoU: one channel, one cut, either side.

    Histograms of landslide and background values per channel give every cut's counts at
    once; the cut maximising mIoU over the training patches is kept."""
    best = (0, 0.0, True, -1.0)
    m = masks[:, 0].astype(bool)
    for c in range(images.shape[1]):
        x = images[:, c]
        edges = np.linspace(float(x.min()), float(x.max()), bins + 1)
        h_fg, _ = np.histogram(x[m], edges)
        h_bg, _ = np.histogram(x[~m], edges)
        for above in (True, False):
            # pixels predicted landslide: values >= edges[k] (above) or < edges[k] (below)
            if above:
                tp = np.concatenate([np.cumsum(h_fg[::-1])[::-1], [0]])
                fp = np.concatenate([np.cumsum(h_bg[::-1])[::-1], [0]])
            else:
                tp = np.concatenate([[0], np.cumsum(h_fg)])
                fp = np.concatenate([[0], np.cumsum(h_bg)])
            fn, tn = h_fg.sum() - tp, h_bg.sum() - fp
            iou = tp / np.maximum(tp + fp + fn, 1)
            iou_bg = tn / np.maximum(tn + fp + fn, 1)
            miou = (iou + iou_bg) / 2
            k = int(np.argmax(miou))
            if miou[k] > best[3]:
                best = (c, float(edges[k]), above, float(miou[k]))
    return best


def _source(data: Path, fold: int, k: int, extra: dict[str, Any] | None = None) -> MMLSSource:
    return MMLSSource(str(data), train_on=["train", "val"],
                      cv={"folds": k, "fold": fold, **(extra or {})})


def baselines(data: Path, k: int, out: Path) -> None:
    """All-background and one-channel threshold rows, one JSON line per fold."""
    from mars_landslide.mmls import CHANNEL_NAMES

    for fold in range(k):
        src = _source(data, fold, k)
        tr, te = src.dataset("train"), src.dataset("test")
        masks = te.masks.numpy() > 0.5
        rows = [("baseline-all_background", np.zeros_like(masks), {})]
        c, thr, above, train_miou = fit_threshold(tr.images.numpy(), tr.masks.numpy())
        x = te.images.numpy()[:, c:c + 1]
        pred = x >= thr if above else x < thr
        rows.append(("baseline-threshold", pred, {
            "rule": f"{CHANNEL_NAMES[c]} {'>=' if above else '<'} {thr:.4f} (normalised units)",
            "train_miou": train_miou}))
        for name, pred, extra in rows:
            conf = confusion(pred, masks)
            _append(out, {"recipe": name, "fold": fold, "folds": k, **conf, **scores(conf),
                          "n_test": len(te), "n_train": len(tr), **extra})


def _append(out: Path, row: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "cv_runs.jsonl").open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def done(out: Path) -> set[tuple[str, int]]:
    path = out / "cv_runs.jsonl"
    if not path.is_file():
        return set()
    return {(r["recipe"], r["fold"]) for r in map(json.loads, path.read_text().splitlines())}


def _overrides(recipe: str) -> tuple[Path, list[str]]:
    items = RECIPES[recipe]
    if items and items[0] == "@marslsnet-paper":
        from mars_landslide.configs import MARSLSNET_PAPER

        return Path(MARSLSNET_PAPER), items[1:]
    return TASK_YAML, list(items)


def run_fold(recipe: str, fold: int, k: int, epochs: int, data: Path, out: Path,
             extra: Sequence[str] = (), max_steps: int | None = None) -> dict[str, Any]:
    """Train ``recipe`` on the other folds, score fold ``fold``; append and return the line."""
    config, overrides = _overrides(recipe)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [
            *overrides, f"trainer.epochs={epochs}", "tracking.enabled=false", "trainer.progress=false",
            "trainer.monitor=train/loss", "trainer.mode=min", "trainer.eval_splits=[test]",
            "data.train_on=[train,val]", f"data.cv.folds={k}", f"data.cv.fold={fold}",
            f"trainer.checkpoint_dir={tmp}", *extra,
        ]
        if max_steps:
            overrides.append(f"trainer.max_steps_per_epoch={max_steps}")
        cfg = load_task_config(config, overrides=overrides, data_root=str(data))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        summary = train(cfg)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    model = summary.model.eval()
    src = MMLSSource(str(data), train_on=["train", "val"], cv={"folds": k, "fold": fold},
                     normalise=str(cfg.data.params.get("normalise", "train_stats")))
    te = src.dataset("test")
    with torch.no_grad():
        probs = torch.cat([model(te.images[i:i + 16]).float().sigmoid() for i in range(0, len(te), 16)]).numpy()
    (out / "probs").mkdir(parents=True, exist_ok=True)
    np.save(out / "probs" / f"{recipe}_f{fold}.npy", probs.astype(np.float16))
    conf = confusion(probs >= 0.5, te.masks.numpy() > 0.5)
    times = [h["epoch_time_s"] for h in summary.history if "epoch_time_s" in h]
    engine = summary.metrics.get("test", {})
    row = {"recipe": recipe, "fold": fold, "folds": k, **conf, **scores(conf),
           "engine_miou": engine.get("miou"), "epochs": len(times), "best_epoch": summary.best_epoch,
           "wall_s_per_epoch": sum(times) / max(len(times), 1), "cpu_s_per_epoch": cpu / max(len(times), 1),
           "wall_s_total": wall, "threads": torch.get_num_threads(), "n_test": len(te),
           "n_train": len(src.dataset("train")), "max_steps": max_steps,
           "overrides": RECIPES[recipe] + list(extra),
           "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    _append(out, row)
    return row


def posthoc_ensembles(out: Path, data: Path, k: int, groups: dict[str, list[str]]) -> None:
    """Mean probability of independently trained recipes, scored on each fold."""
    have = done(out)
    for name, members in groups.items():
        for fold in range(k):
            if (name, fold) in have or not all((m, fold) in have for m in members):
                continue
            probs = np.mean([np.load(out / "probs" / f"{m}_f{fold}.npy").astype(np.float32) for m in members], 0)
            te = _source(data, fold, k).dataset("test")
            conf = confusion(probs >= 0.5, te.masks.numpy() > 0.5)
            _append(out, {"recipe": name, "fold": fold, "folds": k, **conf, **scores(conf),
                          "members": members, "posthoc": True})


def _mean_sd(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return m, sd


def report(out: Path, k: int, command_of: dict[str, str], reference: str = "segformer") -> list[dict[str, Any]]:
    """mean ± sd over folds per recipe (recipes with fewer than k folds are listed as partial),
    and the paired per-fold mIoU difference to ``reference`` (the current default recipe)."""
    lines = [json.loads(x) for x in (out / "cv_runs.jsonl").read_text().splitlines()]
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in lines:
        if r.get("folds") == k:
            by.setdefault(r["recipe"], {})[r["fold"]] = r  # a rerun replaces the earlier line
    rows = []
    for recipe, folds in by.items():
        rs = [folds[f] for f in sorted(folds)]
        row: dict[str, Any] = {"recipe": recipe, "folds_run": len(rs), "folds": k}
        for key in ("miou", "f1", "precision", "recall", "iou"):
            row[key], row[key + "_sd"] = _mean_sd([r[key] for r in rs])
        for key in ("wall_s_per_epoch", "cpu_s_per_epoch"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            row[key] = sum(vals) / len(vals) if vals else None
        row["epochs"] = rs[0].get("epochs")
        ref = by.get(reference, {})
        if recipe != reference and len(ref) == k and len(rs) == k:
            diffs = [folds[f]["miou"] - ref[f]["miou"] for f in range(k)]
            row["dmiou_vs_ref"], row["dmiou_vs_ref_sd"] = _mean_sd(diffs)
        else:
            row["dmiou_vs_ref"], row["dmiou_vs_ref_sd"] = float("nan"), float("nan")
        row["per_fold_miou"] = " ".join(f"{r['miou']:.3f}" for r in rs)
        row["command"] = command_of.get(recipe, "")
        rows.append(row)
    rows.sort(key=lambda r: (r["folds_run"] < k, -r["miou"]))
    import csv

    with (out / "cv_summary.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = ["| recipe | folds | mIoU (mean ± sd) | F1 | precision | recall | ΔmIoU vs " + reference
          + " (paired) | per-fold mIoU | epochs | CPU s/epoch | wall s/epoch |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    def pm(r: dict[str, Any], key: str) -> str:
        return f"{r[key]:.3f} ± {r[key + '_sd']:.3f}" if not math.isnan(r[key + "_sd"]) else f"{r[key]:.3f}"

    for r in rows:
        def f(key: str, r: dict[str, Any] = r) -> str:
            return pm(r, key)

        cpu = f"{r['cpu_s_per_epoch']:.1f}" if r["cpu_s_per_epoch"] else "—"
        wall = f"{r['wall_s_per_epoch']:.1f}" if r["wall_s_per_epoch"] else "—"
        md.append(f"| {r['recipe']} | {r['folds_run']}/{k} | {f('miou')} | {f('f1')} | {f('precision')} "
                  f"| {f('recall')} | {'—' if math.isnan(r['dmiou_vs_ref']) else f('dmiou_vs_ref')} "
                  f"| {r['per_fold_miou']} | {r['epochs'] or '—'} | {cpu} | {wall} |")
    (out / "cv_summary.md").write_text("\n".join(md) + "\n")
    return rows


def threads_note() -> str:
    return f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {torch.get_num_threads()}"


def main_cv(args: argparse.Namespace, command: str) -> int:
    """The ``--cv K`` mode (see the module docstring)."""
    k, out = args.cv, args.out_dir
    if args.baselines and not any(r.startswith("baseline-") for r, f in done(out) if f == 0):
        baselines(args.data, k, out)
    for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        if recipe not in RECIPES:
            raise SystemExit(f"unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
        folds = range(k) if args.folds is None else [int(f) for f in args.folds.split(",")]
        for fold in folds:
            if (recipe, fold) in done(out):
                continue
            print(f"== {recipe} fold {fold}/{k}", flush=True)
            row = run_fold(recipe, fold, k, args.epochs, args.data, out, args.set, args.max_steps)
            print(json.dumps(row), flush=True)
    if args.posthoc:
        groups = {f"posthoc-{'+'.join(g.split('+'))}": g.split("+") for g in args.posthoc.split(",")}
        posthoc_ensembles(out, args.data, k, groups)
    if args.report:
        report(out, k, {})
        print((out / "cv_summary.md").read_text())
    return 0


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
    ap.add_argument("--cv", type=int, default=None, help="spatial K-fold cross-validation over train + val")
    ap.add_argument("--recipes", default="", help="--cv: comma-separated recipe names (see RECIPES)")
    ap.add_argument("--folds", default=None, help="--cv: only these folds, e.g. 0 or 0,1")
    ap.add_argument("--baselines", action="store_true", help="--cv: all-background and threshold rows")
    ap.add_argument("--posthoc", default="",
                    help="--cv: post-hoc ensembles, e.g. segformer+unet,segformer+segformer-seed1")
    ap.add_argument("--report", action="store_true", help="--cv: write cv_summary.{csv,md}")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python3 benchmarks/bench_landslide.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.cv is not None:
        return main_cv(args, command)
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
