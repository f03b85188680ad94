"""Benchmarks of mars-rsl: detection on SYNTHETIC sites, the crawler, coregistration.

``python benchmarks/bench_rsl.py detect --out-dir DIR``
    1. writes SYNTHETIC RSL sites (``mars_rsl.synthetic``; ``--sites`` x ``--dates`` of
       256 px) and splits them BY SITE 60/10/30 (train/val/test: 70/30 as in the paper,
       with a tenth of the sites for the best checkpoint);
    2. baselines on the test windows: the trivial predictor (nothing is RSL) and a
       classical one, thresholded darkening difference (each date standardised per tile to
       remove gain/offset, ``z(t-1) - z(t)`` smoothed by a Gaussian of 1 px, threshold
       chosen on the TRAIN windows for the best pixel balanced accuracy);
    3. trains each model (``--models``: registered names; ``fc-siam-diff`` is icefrag's,
       used through the registry) with ``mars-core run rsl --data DIR`` for ``--epochs``
       and reports the run's test metrics (best checkpoint by val balanced accuracy).
    Writes ``bench_rsl_detect.md`` / ``.json`` in ``--out-dir``.

``python benchmarks/bench_rsl.py crawl --out-dir DIR``
    the crawler against the mock archive (127.0.0.1) built from the real index slice:
    (a) 30 % of product requests failing transiently (503 / cut body / Content-Length
    too long), with one product missing: byte identity, reports, no partial file;
    (b) a crawl stopped half-way (SIGKILL of the CLI) and rerun: what the rerun fetched;
    (c) throughput with 1 and 8 workers against 50 ms latency per request (64 products).

``python benchmarks/bench_rsl.py coreg``
    the known-transform coregistration cases of the tests, printed with their errors.

Every figure in packages/rsl/BENCHMARK.md comes from these commands.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PAPER = {"sensitivity": 0.64, "specificity": 0.996, "fdr": 0.004, "balanced_accuracy": 0.818}
ENV = dict(os.environ, MARS_CORE_PLUGINS="rsl,icefrag", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))


# -- detection ---------------------------------------------------------------------------
def _darkening(item: dict) -> np.ndarray:
    from scipy import ndimage

    def z(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / (x.std() + 1e-6)

    keys = sorted(k for k in item if k.startswith("image") and k[5:].isdigit())
    a, b = (item[k].numpy()[0] for k in keys[-2:])
    return ndimage.gaussian_filter(z(a) - z(b), 1.0)


def baselines(source) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    import torch

    from mars_rsl.metrics import RSLMetric

    train = [source.dataset("train")[i] for i in range(len(source.dataset("train")))]
    test_ds = source.dataset("test")
    test = [test_ds[i] for i in range(len(test_ds))]
    scores = np.concatenate([_darkening(it).ravel() for it in train])
    target = np.concatenate([it["mask"].numpy().ravel() for it in train])
    keep = target != 255
    scores, target = scores[keep], target[keep] > 0.5
    best = (-1.0, 0.0)
    for thr in np.quantile(scores, np.linspace(0.80, 0.999, 60)):
        pred = scores >= thr
        sens = (pred & target).sum() / max(target.sum(), 1)
        spec = (~pred & ~target).sum() / max((~target).sum(), 1)
        best = max(best, ((sens + spec) / 2, float(thr)))
    thr = best[1]
    out = {}
    for name, fn in {"trivial (nothing is RSL)": lambda it: np.zeros(it["mask"].shape[-2:]),
                     f"darkening difference > {thr:.2f} (tuned on train)": lambda it: (_darkening(it) >= thr)}.items():
        m = RSLMetric()
        for it in test:
            m.update(torch.as_tensor(fn(it), dtype=torch.float32)[None, None], it["mask"][None])
        out[name] = {k: float(v) for k, v in m.compute().items()}
    return out


def detect(args: argparse.Namespace) -> None:
    from mars_rsl.data import RSLSeries
    from mars_rsl.synthetic import write_sites

    out = Path(args.out_dir)
    data = out / "sites"
    if not data.exists():
        write_sites(data, args.sites, 256, args.dates, seed=args.seed)
    split = [0.6, 0.1, 0.3]
    source = RSLSeries(str(data), dates=args.T, target=args.target, split=split)
    results: dict[str, dict] = {"split_sites": source.split_sites(), "rows": {}}
    t = time.time()
    results["rows"].update(baselines(source))
    print(f"baselines {time.time() - t:.0f} s", flush=True)
    for model in args.models.split(","):
        js = out / f"run_{model}.json"
        cmd = [sys.executable, "-m", "mars_core.cli", "run", "rsl", "--data", str(data),
               "--set", f"model.name={model}", "--set", f"data.dates={args.T}", "--set", f"data.target={args.target}",
               "--set", f"trainer.epochs={args.epochs}", "--set", f"trainer.batch_size={args.batch}",
               "--set", "trainer.progress=false", "--json", str(js)]
        if model != "siamese-unet-sa":
            cmd += ["--set", "model.in_channels=1"]
        for kv in args.sets:
            if not (kv.startswith("model.") and model != "siamese-unet-sa"):
                cmd += ["--set", kv]
        t = time.time()
        r = subprocess.run(cmd, cwd=out, env=ENV, capture_output=True, text=True)
        if r.returncode:
            print(r.stderr[-3000:])
            raise SystemExit(f"{model}: exit {r.returncode}")
        res = json.loads(js.read_text())
        results["rows"][model] = {k: float(v) for k, v in res["metrics"]["test"].items() if k != "loss"}
        results["rows"][model]["train_s"] = time.time() - t
        print(f"{model}: {time.time() - t:.0f} s", flush=True)
    results["command"] = " ".join(sys.argv)
    (out / "bench_rsl_detect.json").write_text(json.dumps(results, indent=1))
    keys = ["sensitivity", "specificity", "fdr", "balanced_accuracy", "event_sensitivity", "event_fdr"]
    lines = ["| predictor | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, row in results["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.3f}" for k in keys) + " |")
    lines.append("| paper (real HiRISE, different data; context only) | " +
                 " | ".join(f"{PAPER[k]:.3f}" if k in PAPER else "-" for k in keys) + " |")
    (out / "bench_rsl_detect.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


# -- crawler ------------------------------------------------------------------------------
def _fixture() -> tuple[str, bytes]:
    d = ROOT / "packages" / "rsl" / "tests" / "data"
    return (d / "RDRCUMINDEX.LBL").read_text(encoding="latin-1"), (d / "RDRCUMINDEX.TAB").read_bytes()


def _many_products(n: int, size: int) -> dict[str, bytes]:
    from mars_rsl.pds import product_path

    rng = np.random.default_rng(0)
    return {product_path(f"ESP_{11000 + i:06d}_1700", "RED"): rng.bytes(size) for i in range(n)}


def crawl_bench(args: argparse.Namespace) -> None:
    from mars_rsl.crawl.mock import MockArchive, build_archive
    from mars_rsl.crawl.run import CrawlOptions, crawl

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lbl, tab = _fixture()
    res: dict[str, object] = {"command": " ".join(sys.argv)}
    # (a) 30 % transient failures
    files = build_archive(lbl, tab, sizes=(200_000, 400_000), drop=["AEB_000002_0050_RED"], seed=1)
    with MockArchive(files, fault_rate=0.3, seed=11) as arch:
        rep = crawl(CrawlOptions(arch.url, out / "a", workers=4, retries=10, timeout=2, backoff=0.05,
                                 kinds=["RED", "COLOR"]), progress=False)
        faults = [f for _, _, f in arch.gets(".JP2")]
    same = all((out / "a" / p.rsplit("_", 1)[0] / f"{p}.JP2").read_bytes()
               == next(v for k, v in files.items() if k.endswith(f"/{p}.JP2")) for p in rep.downloaded)
    res["a_index"] = {"report": rep.as_dict() | {"errors": len(rep.errors)}, "product_gets": len(faults),
                      "faulty_gets": sum(f is not None for f in faults), "byte_identical": same,
                      "part_files_left": len(list((out / "a").rglob("*.part")))}
    # (a') the same fault rate over 60 probed products of 200 kB
    many = _many_products(60, 200_000)
    with MockArchive(many, fault_rate=0.3, seed=12) as arch:
        rep = crawl(CrawlOptions(arch.url, out / "a2", probe=True, orbits=(11000, 11059), targets=["1700"],
                                 workers=4, retries=10, timeout=2, backoff=0.05), progress=False)
        faults = [f for _, _, f in arch.gets(".JP2")]
    res["a_probe60"] = {"downloaded": len(rep.downloaded), "missing": len(rep.missing), "failed": len(rep.failed),
                        "product_gets": len(faults), "faulty_gets": sum(f is not None for f in faults),
                        "faults": {k: faults.count(k) for k in ("503", "cut", "badlen")},
                        "byte_identical": all((out / "a2" / Path(k).parent.name / Path(k).name).read_bytes() == v
                                              for k, v in many.items()),
                        "part_files_left": len(list((out / "a2").rglob("*.part")))}
    # (b) kill half-way, rerun
    many = _many_products(40, 200_000)
    with MockArchive(many, latency=0.05, rate=1_000_000) as arch:
        cmd = [sys.executable, "-m", "mars_core.cli", "rsl", "crawl", "--archive", arch.url, "--out", str(out / "b"),
               "--probe", "--orbits", "11000-11039", "--targets", "1700", "--workers", "2", "--no-progress"]
        p = subprocess.Popen(cmd, env=ENV, stderr=subprocess.DEVNULL)
        t0 = time.monotonic()
        while len(list((out / "b").rglob("*.JP2"))) < 20 and time.monotonic() - t0 < 120:
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait()
        before = {f.name for f in (out / "b").rglob("*.JP2")}
        parts = len(list((out / "b").rglob("*.part")))
        n0 = len(arch.requests)
        r = subprocess.run([*cmd, "--json", str(out / "b.json")], env=ENV, capture_output=True, text=True)
        refetched = [pth for m, pth, _, _ in arch.requests[n0:] if m == "GET" and Path(pth).name in before]
        resumed = [s for m, pth, s, _ in arch.requests[n0:] if m == "GET" and s]
    rb = json.loads((out / "b.json").read_text())
    res["b"] = {"complete_before_rerun": len(before), "part_files_at_kill": parts, "rerun_exit": r.returncode,
                "rerun_downloaded": len(rb["downloaded"]), "rerun_skipped": len(rb["skipped"]),
                "complete_files_refetched": len(refetched), "range_resumes": len(resumed),
                "all_identical": all((out / "b" / Path(k).parent.name / Path(k).name).read_bytes() == v
                                     for k, v in many.items())}
    # (c) throughput, 50 ms latency
    many = _many_products(64, 20_000)
    tp = {}
    for w in (1, 8):
        with MockArchive(many, latency=0.05) as arch:
            t = time.perf_counter()
            rep = crawl(CrawlOptions(arch.url, out / f"c{w}", probe=True, orbits=(11000, 11063), targets=["1700"],
                                     workers=w, per_host=8, retries=2, timeout=5, backoff=0.05), progress=False)
            tp[w] = {"seconds": time.perf_counter() - t, "downloaded": len(rep.downloaded)}
    tp["speedup_8_vs_1"] = tp[1]["seconds"] / tp[8]["seconds"]  # type: ignore[assignment]
    res["c"] = tp
    (out / "bench_rsl_crawl.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


# -- coregistration -----------------------------------------------------------------------
COREG_CASES = [  # chip, rotation (deg), shift (px), scale, gain, offset, gamma
    ("ESP_016814_2125_RED-0035.jpg", 3.0, (4.3, -2.6), 1.0, 0.7, 20.0, 0.9),
    ("ESP_049651_1050_RED-0043.jpg", -5.0, (-7.7, 3.2), 1.02, 1.3, -15.0, 1.15),
    ("ESP_016814_2125_RED-0035.jpg", 10.0, (15.2, 9.9), 0.97, 1.1, 0.0, 1.3),
    ("ESP_049651_1050_RED-0043.jpg", 0.0, (0.37, -0.81), 1.0, 0.6, 40.0, 1.0),
]


def coreg_bench(args: argparse.Namespace) -> None:
    import cv2

    from mars_rsl.coregister import apply, register_image

    d = ROOT / "packages" / "rsl" / "tests" / "data"
    rows = []
    for name, angle, shift, scale, gain, offset, gamma in COREG_CASES:
        ref = cv2.imread(str(d / name), cv2.IMREAD_GRAYSCALE).astype(np.float32)
        ref = cv2.resize(ref, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
        h, w = ref.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += shift
        a = np.vstack([m, [0, 0, 1]])
        moved = cv2.warpAffine(ref, m, (w, h), flags=cv2.INTER_CUBIC, borderValue=-1)
        inside = cv2.warpAffine(np.ones_like(ref), m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0
        moved = np.clip(gain * 255.0 * (np.clip(moved, 0, 255) / 255.0) ** gamma + offset, 0, 255)
        est, n_match, n_inl, rmse = register_image(ref, np.ones_like(ref, bool), moved, inside)
        ys, xs = np.mgrid[40:h - 40:10, 40:w - 40:10]
        p = np.c_[xs.ravel(), ys.ravel()].astype(np.float64)
        err = apply(est, p) - apply(np.linalg.inv(a), p)
        rows.append({"chip": name, "rotation_deg": angle, "shift_px": shift, "scale": scale,
                     "relight": [gain, offset, gamma], "matches": n_match, "inliers": n_inl,
                     "tie_point_rmse_px": rmse, "truth_rmse_px": float(np.sqrt((err**2).sum(1).mean())),
                     "truth_max_px": float(np.sqrt((err**2).sum(1)).max())})
    print(json.dumps({"command": " ".join(sys.argv), "cases": rows}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("detect")
    d.add_argument("--out-dir", default="bench_rsl")
    d.add_argument("--sites", type=int, default=30)
    d.add_argument("--dates", type=int, default=4)
    d.add_argument("--T", type=int, default=2)
    d.add_argument("--target", default="change")
    d.add_argument("--epochs", type=int, default=10)
    d.add_argument("--batch", type=int, default=4)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--models", default="siamese-unet-sa,fc-siam-diff")
    d.add_argument("--set", dest="sets", action="append", default=[],
                   help="extra override for every model (model.* only for siamese-unet-sa)")
    c = sub.add_parser("crawl")
    c.add_argument("--out-dir", default="bench_rsl_crawl")
    sub.add_parser("coreg")
    args = ap.parse_args()
    {"detect": detect, "crawl": crawl_bench, "coreg": coreg_bench}[args.what](args)


if __name__ == "__main__":
    main()
