"""Verdicts per observation for a chip folder (``mars-core icepatch verdicts``).

Every chip of the folder is classified like a scene chunk (hot pixels repaired, robust
stretch, resampled to the model's input), then the chips of each observation are judged
with the same rules as a whole image's chunks (:mod:`mars_icepatch.verdict`). Outputs,
written to temporary names and renamed only when all three are complete: ``chips.csv``
(one row per chip: p, hot pixels, label), ``verdicts.json`` (per observation, plus the chip
metrics when the folder is labelled) and ``montage.png`` (the most and the least icy chips).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mars_core.errors import MarsError
from mars_icepatch.chips import Chip, chip_tensor, read_chip, read_labels
from mars_icepatch.hotpixels import HotPixelParams
from mars_icepatch.verdict import VERDICTS, VerdictRules, verdict_of

OUTPUTS = ("chips.csv", "verdicts.json", "montage.png")
MONTAGE_N, MONTAGE_PX = 8, 113


def chip_probabilities(model: torch.nn.Module, chips: list[Chip], input_size: int,
                       hot: HotPixelParams | None, batch_size: int = 32,
                       transform: Any = None, mode: str = "browse") -> tuple[np.ndarray, np.ndarray]:
    """(p of "ice" per chip, hot pixels repaired per chip). ``transform(raw, i)`` may alter a
    raw chip first (the benchmark injects SYNTHETIC hot pixels with it)."""
    model.eval()
    probs, hots = [], []
    for start in range(0, len(chips), batch_size):
        xs = []
        for i, c in enumerate(chips[start:start + batch_size], start=start):
            raw = read_chip(c.path)
            if transform is not None:
                raw = transform(raw, i)
            x, n = chip_tensor(raw, input_size, hot, mode)
            xs.append(x)
            hots.append(n)
        with torch.inference_mode():
            probs.append(model(torch.stack(xs)).float().softmax(1)[:, 1].numpy())
    return np.concatenate(probs), np.asarray(hots)


def _montage(chips: list[Chip], p: np.ndarray, path: Path) -> None:
    from PIL import Image, ImageDraw

    order = np.argsort(-p)
    rows = [order[:MONTAGE_N], order[::-1][:MONTAGE_N]]
    pad = 14
    canvas = Image.new("L", (MONTAGE_N * MONTAGE_PX, 2 * (MONTAGE_PX + pad)), 0)
    draw = ImageDraw.Draw(canvas)
    for r, idx in enumerate(rows):
        for k, i in enumerate(idx):
            im = Image.fromarray(read_chip(chips[i].path)).convert("L").resize((MONTAGE_PX, MONTAGE_PX))
            x, y = k * MONTAGE_PX, r * (MONTAGE_PX + pad)
            canvas.paste(im, (x, y + pad))
            draw.text((x + 2, y + 1), f"p={p[i]:.2f} y={chips[i].ice}", fill=255)
    canvas.save(path, format="PNG")


def folder_verdicts(model: torch.nn.Module, cfg: Any, data: Path, out_dir: Path, overwrite: bool = False) -> dict:
    """Classify every chip of ``data`` and write the three outputs (see the module docstring)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise MarsError(f"output {out_dir} exists and is not a directory")
    finals = [out_dir / n for n in OUTPUTS]
    for f in finals:
        if f.exists() and not overwrite:
            raise MarsError(f"output {f} already exists; pass --overwrite to replace it")
    chips = read_labels(data)
    dcfg = cfg.data.model_dump() if hasattr(cfg.data, "model_dump") else dict(cfg.data)
    input_size = int(dcfg.get("input_size") or 128)
    hp = dcfg.get("hot_pixels", True)
    hot = None if hp in (False, None) else HotPixelParams.from_dict({} if hp is True else hp)
    rules = VerdictRules.from_dict(cfg.predict.summary)
    p, n_hot = chip_probabilities(model, chips, input_size, hot, mode=dcfg.get("chip_stretch", "browse"))
    per_obs: dict[str, Any] = {}
    for o in sorted({c.observation for c in chips}):
        idx = [i for i, c in enumerate(chips) if c.observation == o]
        v = verdict_of([float(p[i]) for i in idx], rules)
        v["ice_labels"] = int(sum(chips[i].ice for i in idx))
        v["latitude"] = chips[idx[0]].latitude
        per_obs[o] = v
    y = np.array([c.ice for c in chips])
    pred = (p >= 0.5).astype(int)
    recall = [float((pred[y == k] == k).mean()) for k in (0, 1) if (y == k).any()]
    result = {"data": str(data), "chips": len(chips), "rules": rules.__dict__,
              "chip_accuracy": float((pred == y).mean()), "chip_balanced_accuracy": float(np.mean(recall)),
              "hot_pixels_repaired": int(n_hot.sum()),
              "verdict_counts": {k: sum(1 for v in per_obs.values() if v["verdict"] == k) for k in VERDICTS},
              "observations": per_obs}
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    tmps = [f.with_name(f".{f.name}.partial-{os.getpid()}") for f in finals]
    try:
        with open(tmps[0], "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "observation", "latitude", "landmark_class", "ice", "p", "hot_pixels"])
            for c, pi, h in zip(chips, p, n_hot, strict=True):
                w.writerow([c.file, c.observation, c.latitude, c.landmark_class, c.ice, f"{pi:.6f}", int(h)])
        tmps[1].write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        _montage(chips, p, tmps[2])
    except BaseException:
        for t in tmps:
            with contextlib.suppress(FileNotFoundError):
                t.unlink()
        if created:
            with contextlib.suppress(OSError):
                out_dir.rmdir()
        raise
    for t, f in zip(tmps, finals, strict=True):
        os.replace(t, f)
    return result
