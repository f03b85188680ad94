"""The two figures logged with every run: training curves and a grid of predictions.

Figures are built with ``matplotlib.figure.Figure`` and the Agg canvas directly, never
through ``pyplot``: no global figure registry, no GUI backend picked at import, so logging
works on headless nodes and from any thread.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mars_core.tasks import TaskKind, input_keys_of

Panel = tuple[str, Any]
Preview = Callable[[dict[str, torch.Tensor]], list[Panel]]


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def training_curves(history: Sequence[dict[str, float]], path: Path) -> Path:
    """One panel per quantity (``loss``, ``miou``...), one line per split prefix.

    Keys like ``train/loss`` and ``val/loss`` share a panel so over-fitting is visible at a
    glance; keys without a prefix (``lr``) get their own panel.
    """
    groups: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for i, row in enumerate(history):
        x = float(row.get("epoch", i + 1))
        for key, value in row.items():
            if key == "epoch" or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            split, _, name = key.rpartition("/")
            groups[name][split or name].append((x, float(value)))
    n = max(len(groups), 1)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    if not groups:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no history", ha="center", va="center")
        ax.set_axis_off()
    for i, (name, series) in enumerate(sorted(groups.items())):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, points in sorted(series.items()):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if len(series) > 1 or next(iter(series)) != name:
            ax.legend(fontsize="small")
    return _save(fig, path)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def as_rgb(image: Any) -> np.ndarray:
    """First three bands of a [C,H,W] image, each stretched to its 2-98 % range.

    Normalised inputs have arbitrary ranges per band; a percentile stretch shows
    structure without one outlier pixel flattening the rest. Fewer than three bands are
    shown as grey (band 0).
    """
    arr = _to_numpy(image).astype(np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    bands = arr[:3] if arr.shape[0] >= 3 else np.repeat(arr[:1], 3, axis=0)
    out = np.empty_like(bands)
    for i, band in enumerate(bands):
        finite = band[np.isfinite(band)]
        lo, hi = (np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0))
        out[i] = np.clip((np.nan_to_num(band, nan=lo) - lo) / max(hi - lo, 1e-6), 0, 1)
    return out.transpose(1, 2, 0)


def default_panels(kind: TaskKind, sample: dict[str, torch.Tensor], threshold: float = 0.5,
                   classes: Sequence[str] = ()) -> list[Panel]:
    """Inputs as RGB, then truth and probability maps (or labels in titles)."""
    panels: list[Panel] = [(key, as_rgb(sample[key])) for key in input_keys_of(kind, sample) if key in sample]
    probs = sample.get("probs")
    target = sample.get(kind.target_key)
    if kind is TaskKind.CLASSIFICATION:
        def name(i: int) -> str:
            return classes[i] if i < len(classes) else str(i)

        if panels:
            title = panels[0][0]
            if target is not None:
                title += f" | truth {name(int(_to_numpy(target).reshape(-1)[0]))}"
            if probs is not None:
                p = _to_numpy(probs).reshape(-1)
                title += f" | pred {name(int(p.argmax()))} ({p.max():.2f})"
            panels[0] = (title, panels[0][1])
        return panels
    if target is not None:
        panels.append(("truth", _to_numpy(target).reshape(_to_numpy(target).shape[-2:])))
    if probs is not None:
        p = _to_numpy(probs)
        p = p.reshape(p.shape[-2:])
        panels.append(("probability", p))
        panels.append((f"prediction > {threshold:g}", (p > threshold).astype(np.float32)))
    return panels


def _split(samples: dict[str, torch.Tensor], limit: int) -> list[dict[str, torch.Tensor]]:
    """Batched sample tensors → one dict per sample (non-batched values are shared)."""
    n = min((v.shape[0] for v in samples.values() if isinstance(v, torch.Tensor) and v.ndim > 0),
            default=0)
    n = min(n, limit)
    return [{k: (v[i] if isinstance(v, torch.Tensor) and v.ndim > 0 else v) for k, v in samples.items()}
            for i in range(n)]


def prediction_grid(samples: dict[str, torch.Tensor], kind: TaskKind, path: Path, *,
                    preview: Preview | None = None, limit: int = 8, threshold: float = 0.5,
                    classes: Sequence[str] = ()) -> Path | None:
    """One row per sample, one column per panel; ``None`` when there is nothing to draw.

    A data source's ``preview`` knows its bands (true colour, hillshade, SAR...) and is
    used when given; the default panels only assume the sample layout of the task kind.
    """
    rows = _split(samples, limit)
    if not rows:
        return None
    def panels_of(s: dict[str, torch.Tensor]) -> list[Panel]:
        return preview(s) if preview is not None else default_panels(kind, s, threshold, classes)

    grid = [panels_of(s) for s in rows]
    cols = max((len(r) for r in grid), default=0)
    if cols == 0:
        return None
    # fixed margins: constrained layout costs about a second on a full grid of images
    fig = Figure(figsize=(2.4 * cols, 2.4 * len(grid)))
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.3 / len(grid), wspace=0.05, hspace=0.25)
    for r, panels in enumerate(grid):
        for c in range(cols):
            ax = fig.add_subplot(len(grid), cols, r * cols + c + 1)
            ax.set_axis_off()
            if c >= len(panels):
                continue
            title, image = panels[c]
            arr = _to_numpy(image)
            if arr.ndim == 3 and arr.shape[-1] in (3, 4):
                ax.imshow(np.clip(arr, 0, 1) if arr.dtype.kind == "f" else arr)
            else:
                arr = arr.reshape(arr.shape[-2:]) if arr.ndim > 2 else arr
                unit = arr.size > 0 and np.nanmin(arr) >= 0 and np.nanmax(arr) <= 1
                # maps in [0, 1] (masks, probabilities) share one colour scale
                if unit:
                    ax.imshow(arr, cmap="magma", vmin=0.0, vmax=1.0)
                else:
                    ax.imshow(arr)
            ax.set_title(str(title), fontsize="small")
    return _save(fig, path)
