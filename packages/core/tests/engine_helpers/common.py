"""Shared pieces of the engine's subprocess test scripts (SYNTHETIC data only).

Scripts import this after putting the tests directory on ``sys.path`` so that
``toy_plugin`` is importable in a fresh interpreter (or a torchrun worker).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

TESTS_DIR = Path(__file__).resolve().parent.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import toy_plugin  # noqa: E402

from mars_core import hookimpl, plugins  # noqa: E402
from mars_core.config import load_task_config  # noqa: E402

SEEN_INDICES: list[list[int]] = []  # one list per call of the augmentation (one per training batch)


class AugmentedToySource(toy_plugin.ToySource):
    """Toy squares with a random flip and noise drawn from the *global* torch RNG.

    Drawing from the global RNG is deliberate: a resumed run only matches an uninterrupted
    one if the checkpoint restored that RNG exactly. Records the sample indices it sees.
    """

    def train_augmentation(self):
        def augment(batch):
            SEEN_INDICES.append([int(i) for i in batch["index"].tolist()])
            img, mask = batch["image"], batch["mask"]
            if torch.rand(()) < 0.5:
                img, mask = img.flip(-1), mask.flip(-1)
            img = img + 0.05 * torch.randn_like(img)
            return {**batch, "image": img, "mask": mask}

        return augment


class _AugPlugin:
    @hookimpl
    def register_datasources(self, register) -> None:
        register("toy-augmented", AugmentedToySource, description="SYNTHETIC squares + random aug")


def install() -> None:
    plugins.reset()
    toy_plugin.install()
    plugins.register_plugin(_AugPlugin(), "toy-augmented-plugin")


def config(overrides: list[str]):
    return load_task_config(toy_plugin.TASK_YAML, overrides=overrides)


class RecordingTracker:
    """Appends one JSON line per call to ``events.jsonl``; ``start`` also drops a file
    named after the calling rank so a test can count which processes used a tracker."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.rank = int(os.environ.get("RANK", "0"))

    def _event(self, **kw) -> None:
        with open(self.out_dir / "events.jsonl", "a") as fh:
            fh.write(json.dumps({"rank": self.rank, "pid": os.getpid(), **kw}) + "\n")

    def start(self, cfg, task, resume_run_id=None):
        run_id = resume_run_id or f"run-{os.getpid()}"
        (self.out_dir / f"tracker-start-rank{self.rank}-pid{os.getpid()}").write_text(run_id)
        self._event(call="start", resume_run_id=resume_run_id, run_id=run_id)
        return run_id

    def log_metrics(self, metrics, step):
        self._event(call="log_metrics", step=step, keys=sorted(metrics))

    def log_artifact(self, path, artifact_path=None):
        self._event(call="log_artifact", path=str(path))

    def finish(self, summary):
        self._event(call="finish", run_id=summary.run_id)
        return f"runs:/{summary.run_id}/model"

    def fail(self, reason):
        self._event(call="fail", reason=reason)


def state_hash(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
