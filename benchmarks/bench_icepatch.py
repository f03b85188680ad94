"""Icepatch benchmark: k-fold cross-validation grouped by observation on a chip folder.

Per fold (test = fold k, validation = fold k+1, train = the rest; observations never span
two folds; with ``--pool-val`` the validation fold joins training and nothing is tuned on
it), reported on the TEST fold only:

* the learned model (``mars-core run icepatch`` configuration, trained by the core engine,
  the epoch kept as the configuration says: the last one), with its decision threshold
  chosen on the VALIDATION fold (stored in the model, :mod:`mars_icepatch.threshold`) and,
  for comparison, at the untuned 0.5 (with ``--pool-val`` or ``--no-threshold`` only 0.5);
* baselines: majority class; a mean-brightness threshold (chosen on the training folds for
  balanced accuracy); image statistics + gradient boosting (:mod:`mars_icepatch.features`,
  fitted on the training folds, threshold on the validation fold); the latitude rule
  ``|latitude| >= 55 -> ice`` (the "polar look" trap: in this data every ice chip is polar,
  so a rule that knows nothing about ice is perfect);
* hot pixels: 20 SYNTHETIC hot pixels (value 255, random positions) injected into every
  real test chip: accuracy with the repair on and off, largest change in p, and how many
  injected pixels the detector found; false detections on the clean chips.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_icepatch.py --data /work/shared/data/hirise-chips \
           --folds 5 --epochs 20 --pool-val --out packages/icepatch/BENCHMARK.json
       (or the folds split over two processes with ``--only 0 2 4`` / ``--only 1 3`` and
       ``--merge A.json B.json --out packages/icepatch/BENCHMARK.json``)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mars_core.config import load_task_config
from mars_core.engine import train
from mars_core.tracking.model_io import build_model
from mars_icepatch.chips import HiriseChips, read_chip
from mars_icepatch.features import feature_matrix, fit_gbm
from mars_icepatch.folder import chip_probabilities
from mars_icepatch.hotpixels import HotPixelParams, inject_hot_pixels
from mars_icepatch.plugin import TASK_YAML
from mars_icepatch.threshold import choose_threshold, decision_threshold, set_decision_threshold

N_HOT = 20


def scores(y: np.ndarray, pred: np.ndarray, p: np.ndarray | None = None) -> dict[str, float]:
    recall = [float((pred[y == k] == k).mean()) for k in (0, 1) if (y == k).any()]
    tp = int(((pred == 1) & (y == 1)).sum())
    f1 = 2 * tp / max(1, int((pred == 1).sum()) + int((y == 1).sum()))
    out = {"accuracy": float((pred == y).mean()), "balanced_accuracy": float(np.mean(recall)), "f1": f1}
    if p is not None and 0 < y.sum() < len(y):
        ranks = np.argsort(np.argsort(p)) + 1  # AUROC by the rank-sum (ties are rare in p)
        n1, n0 = int(y.sum()), int(len(y) - y.sum())
        out["auroc"] = float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))
    return out


def mean_brightness(chips: list) -> np.ndarray:
    out = []
    for c in chips:
        a = read_chip(c.path).astype(np.float64)
        v = a[a > 0]
        out.append(v.mean() if v.size else 0.0)
    return np.asarray(out)


def brightness_rule(train_chips: list, test_chips: list) -> dict[str, float]:
    mb, y = mean_brightness(train_chips), np.array([c.ice for c in train_chips])
    best = max(np.unique(mb), key=lambda t: scores(y, (mb >= t).astype(int))["balanced_accuracy"])
    mt, yt = mean_brightness(test_chips), np.array([c.ice for c in test_chips])
    return {**scores(yt, (mt >= best).astype(int), mt), "threshold": float(best)}


def feature_gbm(train_chips: list, val_chips: list | None, test_chips: list, mode: str) -> dict[str, float]:
    """Image-statistics GBM: fit on the training folds, threshold on the validation fold
    (``val_chips`` None: the validation fold is in ``train_chips`` and the cut is 0.5; the
    GBM weighs the classes equally, so 0.5 is its balanced cut)."""
    gbm = fit_gbm(feature_matrix(train_chips, mode), np.array([c.ice for c in train_chips]))
    t = 0.5
    if val_chips is not None:
        pv = gbm.predict_proba(feature_matrix(val_chips, mode))[:, 1]
        t = choose_threshold(pv, np.array([c.ice for c in val_chips]))
    pt = gbm.predict_proba(feature_matrix(test_chips, mode))[:, 1]
    return {**scores(np.array([c.ice for c in test_chips]), (pt >= t).astype(int), pt), "threshold": t}


def run_fold(args: argparse.Namespace, k: int, work: Path) -> dict:
    t0, t_cpu = time.perf_counter(), time.process_time()
    sets = [f"data.root={args.data}", f"data.folds={args.folds}", f"data.fold={k}", f"data.seed={args.seed}",
            f"trainer.epochs={args.epochs}", "trainer.progress=false", "tracking.enabled=false",
            f"trainer.checkpoint_dir={work / f'ckpt{k}'}", f"model.name={args.model}",
            *(["data.fold_val=false"] if args.pool_val else []), *args.set]
    cfg = load_task_config(TASK_YAML, overrides=sets)
    data = cfg.data.model_dump()
    src = HiriseChips(args.data, folds=args.folds, fold=k, seed=args.seed, input_size=int(data.get("input_size", 96)),
                      train_target=data.get("train_target", "ice"))
    mode = data.get("chip_stretch", "browse")
    test, val, trn = src.split_chips("test"), src.split_chips("val"), src.split_chips("train")
    trainval = trn + val
    t_train = time.process_time()
    if args.from_weights:  # no training: the weights an earlier run kept, under this run's eval settings
        model = build_model(cfg, src.input_contract())  # as a stored model is rebuilt
        model.load_state_dict(torch.load(args.from_weights / f"fold{k}.pt", weights_only=True))
        summary = None
    else:
        summary = train(cfg)
        model = summary.model
    cpu_train = time.process_time() - t_train
    size = src.input_size
    if args.save_weights:  # outlives the temporary checkpoint folder: later probes need no retraining
        args.save_weights.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), args.save_weights / f"fold{k}.pt")
    y = np.array([c.ice for c in test])
    hot = HotPixelParams()
    set_decision_threshold(model, 0.5)  # p on the model's own scale for choosing the cut
    p_untuned, n_clean = chip_probabilities(model, test, size, hot, mode=mode)
    p_val = None if args.pool_val else chip_probabilities(model, val, size, hot, mode=mode)[0]
    threshold = choose_threshold(p_val, np.array([c.ice for c in val])) if args.threshold and p_val is not None \
        else 0.5
    set_decision_threshold(model, threshold)  # stored in the model: p' >= 0.5 <=> p >= threshold
    # the test fold again only if the cut moved (n_clean, hot pixels found, does not depend on it)
    p_clean = p_untuned if threshold == 0.5 else chip_probabilities(model, test, size, hot, mode=mode)[0]
    rng_seed = 1000 + k

    def injector(raw: np.ndarray, i: int) -> np.ndarray:
        return inject_hot_pixels(raw, N_HOT, np.random.default_rng(rng_seed * 100003 + i))

    p_rep, n_found = chip_probabilities(model, test, size, hot, transform=injector, mode=mode)
    repair_off = {}
    if not args.lean:
        p_raw, _ = chip_probabilities(model, test, size, None, transform=injector, mode=mode)
        p_norep, _ = chip_probabilities(model, test, size, None, mode=mode)
        repair_off = {
            "model_without_repair_clean": scores(y, (p_norep >= 0.5).astype(int), p_norep),
            "hot_injected_repair_off": scores(y, (p_raw >= 0.5).astype(int), p_raw),
            "hot_max_abs_dp_repair_off": float(np.abs(p_raw - p_clean).max()),
        }
    tta = {}
    model_tta = None if args.lean else getattr(model, "tta", None)  # lean: no comparisons with TTA switched
    if model_tta:  # the same weights without test-time augmentation
        model.tta = False
        p_single, _ = chip_probabilities(model, test, size, hot, mode=mode)
        tta = {"model_no_tta": scores(y, (p_single >= 0.5).astype(int), p_single)}
        model.tta = True
    elif model_tta is not None and p_val is not None:  # the same weights, logits averaged over 8 D4 views
        model.tta = True
        set_decision_threshold(model, 0.5)
        pv_tta, _ = chip_probabilities(model, val, size, hot, mode=mode)
        t_tta = choose_threshold(pv_tta, np.array([c.ice for c in val])) if args.threshold else 0.5
        set_decision_threshold(model, t_tta)
        pt_tta, _ = chip_probabilities(model, test, size, hot, mode=mode)
        yv = np.array([c.ice for c in val])
        tta = {"model_tta": {**scores(y, (pt_tta >= 0.5).astype(int), pt_tta), "threshold": t_tta},
               "val_tta": scores(yv, (pv_tta >= t_tta).astype(int), pv_tta)}
        model.tta = False
        set_decision_threshold(model, threshold)
    ymaj = int(np.mean([c.ice for c in trainval]) >= 0.5)
    lat = np.array([abs(c.latitude) >= 55 for c in test]).astype(int)
    return {
        "fold": k, "trainer_seed": cfg.trainer.seed, "test_chips": len(test), "test_ice": int(y.sum()),
        "test_observations": sorted({c.observation for c in test}),
        # per-chip p (TTA, repair on) so that runs with other trainer seeds can be averaged (--ensemble)
        "test_files": [c.path.name for c in test], "test_class": [c.landmark_class for c in test],
        "test_y": y.tolist(), "p_test": p_clean.round(6).tolist(),
        **({"engine_test_metrics": summary.metrics.get("test", {}), "best_epoch": summary.best_epoch}
           if summary is not None else {"weights": str(args.from_weights / f"fold{k}.pt")}),
        "threshold": decision_threshold(model), "cpu_train_s": cpu_train,
        "model": scores(y, (p_clean >= 0.5).astype(int), p_clean),
        "model_at_0.5": scores(y, (p_untuned >= 0.5).astype(int), p_untuned),
        **({"val": scores(np.array([c.ice for c in val]), (p_val >= threshold).astype(int), p_val)}
           if p_val is not None else {}), **tta,
        "hot_injected_repair_on": scores(y, (p_rep >= 0.5).astype(int), p_rep),
        "hot_max_abs_dp_repair_on": float(np.abs(p_rep - p_clean).max()), **repair_off,
        "hot_found_fraction": float(np.minimum(n_found - n_clean, N_HOT).sum() / (N_HOT * len(test))),
        "false_hot_on_clean_chips": int(n_clean.sum()),
        "majority": scores(y, np.full_like(y, ymaj)),
        "brightness": brightness_rule(trainval, test),
        **({"feature_gbm": feature_gbm(trainval, None, test, mode) if args.pool_val else
            feature_gbm(trn, val, test, mode)} if args.features else {}),
        "latitude_rule": scores(y, lat, lat.astype(float)),
        "seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - t_cpu,
    }


ROWS = ("model", "model_no_tta", "model_at_0.5", "model_tta", "val", "val_tta", "hot_injected_repair_on",
        "hot_injected_repair_off", "majority", "brightness", "feature_gbm", "latitude_rule")


def summarise(results: list[dict]) -> None:
    """Mean ± sd (ddof 1) over the folds of every row, and the per-fold hot-pixel drops."""
    print(f"folds {[r['fold'] for r in results]}")
    for row in (r for r in ROWS if all(r in res for res in results)):
        cells = []
        for m in ("accuracy", "balanced_accuracy", "f1", "auroc"):
            v = [r[row][m] for r in results if m in r[row]]
            cells.append(f"{m} {np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}" if v else f"{m} -")
        print(f"{row:26s} " + " | ".join(cells))
    for on in ("on", "off"):
        if not all(f"hot_injected_repair_{on}" in r for r in results):
            continue
        drops = [r["model"]["accuracy"] - r[f"hot_injected_repair_{on}"]["accuracy"] for r in results]
        print(f"accuracy drop with hot pixels (repair {on}) per fold: {[round(d, 4) for d in drops]}")


def _seed_of(args: dict) -> int:
    """trainer.seed of a run by an older bench_icepatch.py, whose results lack ``trainer_seed``
    (from its stringified ``--set`` list; 0 when it was left at the default)."""
    sets = args.get("set", "[]")
    for item in (sets if isinstance(sets, list) else [x.strip(" '\"") for x in sets.strip("[]").split(",")]):
        if item.startswith("trainer.seed="):
            return int(item.split("=", 1)[1])
    return 0


def ensemble_report(files: list[Path], out: Path) -> None:
    """No training: per fold, the mean p of the runs (one per trainer seed, in ``files``, each
    with ``p_test``) scored on the test fold, for ensembles of the first 1, 2, ... seeds.

    That mean is what ``mars-core icepatch ensemble`` computes (members' TTA p averaged), so
    the figures are those of the shipped combination, not of an approximation of it."""
    runs: dict[int, dict[int, dict]] = {}
    for f in files:
        part = json.loads(f.read_text())
        args = part["args"] if isinstance(part["args"], dict) else part["args"][0]
        for r in part["folds"]:
            if "p_test" not in r:
                raise SystemExit(f"{f}: fold {r['fold']} has no p_test (run by an older bench_icepatch.py)")
            seed = r["trainer_seed"] if "trainer_seed" in r else _seed_of(args)
            runs.setdefault(int(r["fold"]), {})[seed] = r
    seeds = sorted(set.intersection(*(set(v) for v in runs.values())))
    folds = []
    for k in sorted(runs):
        base = runs[k][seeds[0]]
        y = np.array(base["test_y"])
        if any(runs[k][s]["test_files"] != base["test_files"] for s in seeds):
            raise SystemExit(f"fold {k}: the runs scored different test chips")
        row: dict = {"fold": k, "seeds": seeds, "test_chips": len(y), "test_ice": int(y.sum())}
        for s in seeds:
            p = np.array(runs[k][s]["p_test"])
            row[f"seed_{s}"] = scores(y, (p >= 0.5).astype(int), p)
        for n in range(2, len(seeds) + 1):
            p = np.mean([runs[k][s]["p_test"] for s in seeds[:n]], axis=0)
            row[f"ensemble_{n}"] = scores(y, (p >= 0.5).astype(int), p)
        if len(seeds) == 1:  # the loop above left p at the mean of all seeds otherwise
            p = np.array(base["p_test"])
        classes = np.array(base["test_class"])
        row["ensemble_recall_by_class"] = {c: float(((p >= 0.5).astype(int) == y)[classes == c].mean())
                                           for c in sorted(set(classes))}
        folds.append(row)
    out.write_text(json.dumps({"files": [str(f) for f in files], "folds": folds}, indent=1))
    names = [f"seed_{s}" for s in seeds] + [f"ensemble_{n}" for n in range(2, len(seeds) + 1)]
    print(f"folds {[r['fold'] for r in folds]}, seeds {seeds}")
    for name in names:
        cells = []
        for m in ("accuracy", "balanced_accuracy", "f1", "auroc"):
            v = [r[name][m] for r in folds]
            cells.append(f"{m} {np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}")
        print(f"{name:12s} " + " | ".join(cells))
    single = [np.mean([r[f"seed_{s}"]["balanced_accuracy"] for s in seeds]) for r in folds]
    print(f"mean single-seed balanced accuracy per fold: {[round(float(v), 3) for v in single]}")
    print(f"ensemble of {len(seeds)} per fold: "
          f"{[round(r[names[-1]]['balanced_accuracy'], 3) for r in folds]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="chip folder (labels.csv + chips/)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="xception-small")
    ap.add_argument("--only", type=int, nargs="*", help="run only these folds")
    ap.add_argument("--set", action="append", default=[], help="extra config override KEY=VALUE")
    ap.add_argument("--out", type=Path, required=True, help="per-fold JSON (with --merge: the merged file)")
    ap.add_argument("--no-threshold", dest="threshold", action="store_false",
                    help="keep the 0.5 cut instead of choosing one on the validation fold")
    ap.add_argument("--pool-val", action="store_true",
                    help="train the model on the training AND validation folds (data.fold_val=false), decide at 0.5; "
                         "the GBM baseline likewise")
    ap.add_argument("--no-features", dest="features", action="store_false",
                    help="skip the image-statistics GBM baseline")
    ap.add_argument("--save-weights", type=Path, metavar="DIR",
                    help="keep each fold's trained weights as DIR/fold{k}.pt (state dict)")
    ap.add_argument("--from-weights", type=Path, metavar="DIR",
                    help="no training: evaluate DIR/fold{k}.pt (kept by --save-weights with the same data and model "
                         "settings) under this run's --set, e.g. other test-time settings")
    ap.add_argument("--lean", action="store_true",
                    help="only the goals' figures: skip the repair-off and no-TTA passes (each costs a full "
                         "pass over the test fold, several under test-time scales)")
    ap.add_argument("--merge", type=Path, nargs="+",
                    help="no training: merge the per-fold JSONs of runs split over processes (--only) into --out")
    ap.add_argument("--ensemble", type=Path, nargs="+",
                    help="no training: score the mean p of runs that differ only in trainer.seed (their per-fold "
                         "JSONs) on each test fold, written to --out")
    args = ap.parse_args()
    if args.ensemble:
        ensemble_report(args.ensemble, args.out)
        return
    if args.merge:
        parts = [json.loads(p.read_text()) for p in args.merge]
        results = sorted((r for part in parts for r in part["folds"]), key=lambda r: r["fold"])
        if len({r["fold"] for r in results}) != len(results):
            raise SystemExit("--merge: a fold appears in two files")
        args.out.write_text(json.dumps({"args": [part["args"] for part in parts], "folds": results}, indent=1))
        summarise(results)
        return
    if not args.data:
        raise SystemExit("--data is required (unless --merge)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in args.only if args.only else range(args.folds):
            r = run_fold(args, k, Path(tmp))
            results.append(r)
            print(json.dumps({kk: r[kk] for kk in ("fold", "threshold", "model", "model_at_0.5", "latitude_rule",
                                                    "hot_injected_repair_on", "hot_injected_repair_off",
                                                    "seconds", "cpu_s") if kk in r}), flush=True)
            args.out.write_text(json.dumps({"args": {k2: str(v) for k2, v in vars(args).items()},
                                            "folds": results}, indent=1))
    summarise(results)


if __name__ == "__main__":
    main()
