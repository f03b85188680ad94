"""Glacier benchmarks on the shared scene's WESTERN part only (the eastern part is withheld).

Every figure is a spatial cross-validation estimate: the scene's blocks of 2 x 2 tiles
(128 px) are dealt into ``--folds`` folds (``mars_core.geodata.spatial_folds``); fold i is
validation, the others train, with a gap of one whole tile between them. Each fold's
validation is scored over whole tiles that never overlap; the trivial all-glacier
predictor is scored on exactly the same pixels. Reported: mean ± sd over folds.

  python benchmarks/bench_glacier.py archs  --out DIR [--steps N] [--models a,b]
  python benchmarks/bench_glacier.py sweep  --out DIR --model M --grid dropout=0,0.3 ...
  python benchmarks/bench_glacier.py augment --out DIR --model M
  python benchmarks/bench_glacier.py table --out DIR         (markdown of what is in DIR)

Each trial trains through the project's engine (the task's default YAML with overrides,
no MLflow) and appends one JSON line per fold to DIR/<kind>.jsonl, so a long run can be
read while it goes and resumed (trials already in the file are skipped).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

DATA = "/work/shared/data/glacier"
KEYS = ("miou", "mcc", "f1", "balanced_accuracy", "iou_glacier", "iou_other")


def fold_overrides(k: int, i: int) -> list[str]:
    return [f"data.folds={k}", f"data.fold={i}", "data.fractions=[1,0,0]"]


def trivial(root: str, k: int, i: int) -> dict[str, float]:
    """All-glacier prediction on fold i's validation pixels."""
    from mars_glacier.metrics import confusion_scores
    from mars_glacier.scenes import GlacierScenes

    src = GlacierScenes(root, folds=k, fold=i)
    ds = src.dataset("val")
    tp = fp = 0
    for j in range(len(ds)):
        lab = ds.labels_of(j)
        tp += int((lab == 1).sum())
        fp += int((lab == 0).sum())
    return {**confusion_scores(tp, fp, 0, 0), "pixels": float(tp + fp), "glacier_share": tp / max(tp + fp, 1)}


def run_trial(root: str, overrides: list[str], workdir: Path) -> tuple[dict[str, float], float]:
    from mars_core.config import load_task_config
    from mars_core.engine import train
    from mars_glacier.plugin import TASK_YAML

    cfg = load_task_config(TASK_YAML, None, [*overrides, "trainer.progress=false", "tracking.enabled=false",
                                             f"trainer.checkpoint_dir={workdir}", "trainer.eval_splits=[val]"], root)
    start = time.perf_counter()
    summary = train(cfg, None)
    return {k: float(v) for k, v in summary.metrics["val"].items()}, time.perf_counter() - start


def done(path: Path) -> set[tuple[str, int]]:
    if not path.exists():
        return set()
    return {(r["trial"], r["fold"]) for r in map(json.loads, path.read_text().splitlines()) if r}


def run_many(kind: str, trials: dict[str, list[str]], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{kind}.jsonl"
    have = done(path)
    budget = [f"trainer.epochs={args.epochs}", f"trainer.max_steps_per_epoch={args.steps}",
              f"trainer.batch_size={args.batch}", f"data.train_overlap={args.train_overlap}"]
    for i in (args.only_folds or range(args.folds)):
        base = trivial(args.data, args.folds, i)
        if ("trivial", i) not in have:
            with path.open("a") as f:
                f.write(json.dumps({"trial": "trivial", "fold": i, "overrides": [], "val": base, "seconds": 0}) + "\n")
        for name, overrides in trials.items():
            if (name, i) in have:
                continue
            ov = [*budget, *fold_overrides(args.folds, i), *overrides]
            metrics, seconds = run_trial(args.data, ov, out / "ckpt")
            row = {"trial": name, "fold": i, "overrides": ov, "val": metrics, "seconds": seconds}
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{kind} {name} fold {i}: miou {metrics['miou']:.3f} mcc {metrics['mcc']:.3f} ({seconds:.0f} s)",
                  flush=True)


def table(out: Path) -> str:
    lines = []
    for path in sorted(out.glob("*.jsonl")):
        rows = [json.loads(x) for x in path.read_text().splitlines() if x]
        by: dict[str, list[dict[str, Any]]] = {}
        trained = {r["fold"] for r in rows if r["trial"] != "trivial"}
        for r in rows:  # the trivial predictor only on the folds where models were trained
            if r["trial"] != "trivial" or r["fold"] in trained:
                by.setdefault(r["trial"], []).append(r)
        lines += [f"\n### {path.stem}\n", "| trial | folds | " + " | ".join(KEYS) + " | s/fold |",
                  "|---" * (len(KEYS) + 3) + "|"]
        for name, rs in by.items():
            cells = []
            for k in KEYS:
                vals = [r["val"][k] for r in rs]
                sd = f" ± {statistics.stdev(vals):.3f}" if len(vals) > 1 else ""
                cells.append(f"{statistics.mean(vals):.3f}{sd}")
            secs = statistics.mean(r["seconds"] for r in rs)
            lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + f" | {secs:.0f} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["archs", "sweep", "augment", "table"])
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=DATA)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--only-folds", type=int, nargs="*", default=None, help="run these folds only (CPU budget)")
    p.add_argument("--train-overlap", type=float, default=0.875)
    p.add_argument("--models", default="")
    p.add_argument("--model", default="glacier-linknet")
    p.add_argument("--grid", nargs="*", default=["dropout=0,0.3", "activation=relu,gelu", "pooling=max,avg"])
    args = p.parse_args()
    if args.kind == "table":
        print(table(Path(args.out)))
        return
    if args.kind == "archs":
        from mars_glacier.models.catalog import FACTORIES

        names = args.models.split(",") if args.models else list(FACTORIES)
        trials = {n: [f"model.name={n}"] for n in names}
    elif args.kind == "sweep":
        keys = [g.split("=", 1)[0] for g in args.grid]
        values = [g.split("=", 1)[1].split(",") for g in args.grid]
        trials = {",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True)):
                  [f"model.name={args.model}", *(f"model.{k}={v}" for k, v in zip(keys, combo, strict=True))]
                  for combo in itertools.product(*values)}
    else:
        trials = {"flip+jitter": [f"model.name={args.model}", "data.augment=[flip,jitter]"],
                  "none": [f"model.name={args.model}", "data.augment=[]"]}
    run_many(args.kind, trials, args)


if __name__ == "__main__":
    main()
