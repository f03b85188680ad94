"""Engine overhead: ``mars_core.engine.train`` against a bare PyTorch loop, in one process.

Usage: python benchmarks/bench_engine.py [--epochs 3] [--steps 40] [--batch 16] [--size 64]
       [--repeats 3] [--threads 2] [--out bench-results/engine.json]

Both sides train the same seeded model (a 6-layer CNN of width 32, 37,665 parameters)
on the same SYNTHETIC tensors (noise with bright squares, generated once and held in
memory, so data loading costs the same on both sides) for the same number of optimiser
steps, with Adam and BCE, batch ``--batch``, on CPU:

* engine: ``mars_core.engine.train`` with a throwaway plugin registered in this process;
  training split only (no validation or test evaluation), tracking off, progress off, but
  everything else as a user gets it: deterministic algorithms, seeding, per-epoch
  checkpoints (``last.pt`` and ``best.pt`` written atomically), LR schedule bookkeeping,
  the per-epoch summary;
* bare: the loop a user would write by hand - DataLoader (same batch size, shuffled),
  ``zero_grad / forward / loss / backward / step``, nothing else.

The two alternate ``--repeats`` times (bare, engine, bare, engine, ...) after one warm-up
of each, so drift in the machine's load hits both; the reported ratio is the median of
the per-pair ratios engine / bare, for wall and for CPU time. Goal: < 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mars_core import hookimpl
from mars_core.data import InputContract, Normalisation
from mars_core.tasks import TaskKind, TaskSpec

PLUGIN = "bench-engine-plugin"
WIDTH = 32


class HeldSquares(Dataset):
    """SYNTHETIC samples generated once: the same tensors feed both loops."""

    def __init__(self, n: int, size: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 1, size, size, generator=g) * 0.3
        self.masks = torch.zeros(n, 1, size, size)
        for i in range(n):
            s = int(torch.randint(4, size // 2, (1,), generator=g))
            y, x = (int(v) for v in torch.randint(0, size - s, (2,), generator=g))
            self.masks[i, 0, y : y + s, x : x + s] = 1.0
        self.images += self.masks

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[i], "mask": self.masks[i]}


class BenchNet(nn.Module):
    def __init__(self, in_channels: int = 1, width: int = WIDTH) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(5):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        layers.append(nn.Conv2d(width, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)


class BenchSource:
    data: HeldSquares | None = None  # set by main before the engine builds the source

    def __init__(self, root: str | None = None) -> None:
        self.root = root

    def splits(self) -> list[str]:
        return ["train"]

    def dataset(self, split: str) -> Dataset:
        assert BenchSource.data is not None
        return BenchSource.data

    def input_contract(self) -> InputContract:
        size = BenchSource.data.images.shape[-1] if BenchSource.data is not None else 64
        return InputContract(kind=TaskKind.SEGMENTATION, bands=["b0"],
                             normalisation=Normalisation(mean=[0.0], std=[1.0]), tile_size=size)

    def train_augmentation(self) -> None:
        return None


@hookimpl
def register_datasources(register) -> None:  # type: ignore[no-untyped-def]
    register("bench-squares", BenchSource, description="SYNTHETIC squares held in memory (benchmark)")


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    register("bench-net", BenchNet, description="6-layer CNN (benchmark)")


@hookimpl
def register_tasks(register) -> None:  # type: ignore[no-untyped-def]
    register(TaskSpec(name="bench-engine", kind=TaskKind.SEGMENTATION, default_config=Path(__file__),
                      distribution="(benchmark)", description="SYNTHETIC engine benchmark"))


def engine_run(args: argparse.Namespace, workdir: Path) -> tuple[float, float]:
    from mars_core.config import build_config
    from mars_core.engine import train

    cfg = build_config({
        "task": "bench-engine",
        "data": {"name": "bench-squares"},
        "model": {"name": "bench-net"},
        "loss": {"name": "bce"},
        "metrics": [],
        "trainer": {"epochs": args.epochs, "batch_size": args.batch, "lr": 1e-3, "optimizer": "adam",
                    "seed": 0, "device": "cpu", "monitor": "train/loss", "mode": "min", "progress": False,
                    "eval_splits": [], "checkpoint_dir": str(workdir / f"ckpt-{time.monotonic_ns()}")},
        "tracking": {"enabled": False},
    })
    t0, c0 = time.perf_counter(), time.process_time()
    train(cfg, None)
    return time.perf_counter() - t0, time.process_time() - c0


def bare_run(args: argparse.Namespace) -> tuple[float, float]:
    torch.manual_seed(0)
    data = BenchSource.data
    assert data is not None
    model = BenchNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    loader = DataLoader(data, batch_size=args.batch, shuffle=True, drop_last=False)
    t0, c0 = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(args.epochs):
        for batch in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch["image"]), batch["mask"])
            loss.backward()
            opt.step()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=40, help="optimiser steps per epoch")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="tile side in pixels")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    from mars_core import plugins

    plugins.register_plugin(sys.modules[__name__], PLUGIN)
    BenchSource.data = HeldSquares(args.steps * args.batch, args.size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bare_run(args), engine_run(args, work)  # warm-up of both paths
        for r in range(args.repeats):
            bare = bare_run(args)
            eng = engine_run(args, work)
            rows.append({"repeat": r, "bare_s": bare[0], "bare_cpu_s": bare[1], "engine_s": eng[0],
                         "engine_cpu_s": eng[1], "ratio": eng[0] / bare[0], "ratio_cpu": eng[1] / bare[1]})
            print(f"repeat {r}: bare {bare[0]:.2f} s, engine {eng[0]:.2f} s, ratio {eng[0] / bare[0]:.3f} "
                  f"(CPU {eng[1] / bare[1]:.3f})", flush=True)
    ratio = statistics.median(r["ratio"] for r in rows)
    ratio_cpu = statistics.median(r["ratio_cpu"] for r in rows)
    steps = args.epochs * args.steps
    result = {
        "benchmark": "engine overhead (SYNTHETIC data)",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": args.threads,
                    "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "model": f"6-layer CNN width {WIDTH}, {sum(p.numel() for p in BenchNet().parameters())} parameters",
        "steps": steps, "batch": args.batch, "tile": args.size,
        "repeats": rows, "median_ratio_wall": ratio, "median_ratio_cpu": ratio_cpu,
        "goal": "< 1.05", "met": ratio < 1.05,
    }
    print(f"engine / bare, median of {args.repeats}: wall {ratio:.3f}, CPU {ratio_cpu:.3f} "
          f"({steps} steps of batch {args.batch} at {args.size} px; goal < 1.05)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"written: {args.out}")


if __name__ == "__main__":
    main()
