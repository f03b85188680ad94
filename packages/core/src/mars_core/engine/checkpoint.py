"""Checkpoint files: layout, atomic writing, and the compatibility check on resume.

Layout of ``last.pt`` / ``best.pt`` (a dict, loadable with ``torch.load(weights_only=True)``)::

    format        1
    epoch         last completed epoch, 1-based (resume starts at epoch + 1)
    model         state_dict of the plain (unwrapped) model
    optimizer, scheduler, scaler   their state_dicts
    best_value, best_epoch, bad_epochs   monitor bookkeeping and early-stopping counter
    history       list of per-epoch dicts (the logged values plus "epoch")
    rng           list of RNG snapshots, one per rank (see reproducibility.capture_rng)
    world_size    number of processes that wrote it
    run_id        tracker run id (reopened on resume)
    config_hash   sha256 of the resolved config minus the keys in RESUME_FREE_KEYS
    config        the resolved config (for humans)

Files are written to a hidden temporary name in the same directory and moved into place
with ``os.replace``, so a crash never leaves a truncated ``last.pt``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from mars_core.config import RunConfig
from mars_core.errors import MarsError

FORMAT = 1
LAST = "last.pt"
BEST = "best.pt"

# Keys that may change between a run and its resumption: they do not change the training
# trajectory (how long to train, where files go, what is displayed or tracked).
RESUME_FREE_KEYS: dict[str, tuple[str, ...]] = {
    "trainer": ("resume", "epochs", "progress", "num_workers", "checkpoint_dir", "eval_splits"),
    "tracking": ("enabled", "experiment", "register_model", "registered_model", "sample_predictions",
                 "timeout_s"),
}


def config_hash(cfg: RunConfig) -> str:
    d = cfg.to_dict()
    d.pop("predict", None)  # prediction settings do not change training
    for section, keys in RESUME_FREE_KEYS.items():
        for k in keys:
            d.get(section, {}).pop(k, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def config_difference(saved: dict[str, Any], cfg: RunConfig) -> list[str]:
    """Dotted keys whose values differ, ignoring the resume-free keys; for the error message."""
    now = cfg.to_dict()
    out: list[str] = []

    def walk(prefix: str, a: Any, b: Any) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                section = prefix.split(".")[0] if prefix else k
                if not prefix and k == "predict":
                    continue
                if prefix == section and k in RESUME_FREE_KEYS.get(section, ()):
                    continue
                walk(f"{prefix}.{k}" if prefix else k, a.get(k), b.get(k))
        elif a != b:
            out.append(f"{prefix} ({a!r} -> {b!r})")

    walk("", saved, now)
    return out


def save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resume_path(resume: str, checkpoint_dir: str) -> Path:
    path = Path(checkpoint_dir) / LAST if resume == "last" else Path(resume)
    if not path.is_file():
        raise MarsError(f"trainer.resume: no checkpoint at {path}")
    return path


def load(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MarsError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise MarsError(f"{path} is not a mars-core checkpoint (format {FORMAT})")
    return state


def check_compatible(state: dict[str, Any], cfg: RunConfig, path: Path) -> None:
    if state.get("config_hash") == config_hash(cfg):
        return
    diff = config_difference(state.get("config") or {}, cfg)
    detail = "; ".join(diff[:5]) if diff else "unknown difference"
    raise MarsError(
        f"cannot resume from {path}: the configuration differs from the one it was trained with "
        f"({detail}); only {', '.join('trainer.' + k for k in RESUME_FREE_KEYS['trainer'])} "
        "and tracking.* may change"
    )
