"""``mars-core icepatch calibrate``: choose a trained model's decision threshold on the
validation chips of a folder and save a copy of the model that carries it.

Why a command: the core engine has no step between "best epoch restored" and "model
registered" where a task could choose a threshold, so ``mars-core run icepatch`` registers
the model with t = 0.5. This command (and ``benchmarks/bench_icepatch.py``, which calls the
same function) chooses t on the VALIDATION split of the model's own data settings, never on
the test split, and writes a new model directory (weights with ``decision_logit`` set,
``contract.json`` with ``threshold``) that ``predict``, ``evaluate`` and ``icepatch verdicts``
take as ``--model DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mars_core.errors import MarsError
from mars_icepatch.chips import HiriseChips
from mars_icepatch.folder import chip_probabilities
from mars_icepatch.threshold import choose_threshold, decision_threshold, set_decision_threshold


def source_for(cfg: Any, data: Path) -> HiriseChips:
    """The model's own data settings (split, folds, seed, input size, stretch) on ``data``."""
    params = cfg.data.model_dump() if hasattr(cfg.data, "model_dump") else dict(cfg.data)
    params = {k: v for k, v in params.items() if k not in ("name", "root")}
    return HiriseChips(str(data), **params)


def calibrate_model(model: nn.Module, source: HiriseChips, split: str = "val") -> dict[str, Any]:
    """Choose t on ``split`` of ``source`` (p with the buffer at 0.5) and store it in ``model``."""
    if split == "test":
        raise MarsError("calibrate: the threshold must not be chosen on the test split; use val (or train)")
    chips = source.split_chips(split)
    set_decision_threshold(model, 0.5)
    p, _ = chip_probabilities(model, chips, source.input_size, source.hot_pixels, mode=source.chip_stretch)
    y = np.array([c.ice for c in chips])
    t = choose_threshold(p, y)
    set_decision_threshold(model, t)
    return {"threshold": decision_threshold(model), "split": split, "chips": len(chips), "ice": int(y.sum()),
            "observations": len({c.observation for c in chips})}


def calibrate_to_dir(uri: str, data: Path, out: Path, split: str = "val") -> dict[str, Any]:
    """Load ``uri``, calibrate on ``data``'s ``split``, save the result as a model directory."""
    from mars_core.tracking.model_io import load_model, save_model_dir

    if out.exists():
        raise MarsError(f"model directory {out} already exists")
    loaded = load_model(uri)
    info = calibrate_model(loaded.model, source_for(loaded.cfg, data), split)
    contract = loaded.contract.model_copy(update={"threshold": info["threshold"]})
    save_model_dir(loaded.model, loaded.cfg, contract, out)
    return info
