"""Association of mapped fragments with mapped shadows (Su et al.'s association analysis).

A fragment is *with shadow* when at least one shadow polygon lies within ``max_distance``
map units (metres for projected Mars CRSs) of it; otherwise *alone*. A shadow within that
distance of no fragment is a *shadow alone*. Several shadows near one fragment count the
fragment once (the same rule as the event metric). Polygons are read from GeoJSON
(Polygon / MultiPolygon features, the format ``mars-core predict`` writes).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.strtree import STRtree

from mars_core.errors import MarsError


@dataclass
class Association:
    fragments: int
    shadows: int
    fragments_with_shadow: int
    fragments_alone: int
    shadows_alone: int
    max_distance: float


def read_polygons(path: str | Path) -> list[BaseGeometry]:
    p = Path(path)
    if not p.is_file():
        raise MarsError(f"GeoJSON not found: {p}")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise MarsError(f"{p} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    feats = data.get("features") if isinstance(data, dict) and data.get("type") == "FeatureCollection" else None
    if feats is None:
        raise MarsError(f"{p} is not a GeoJSON FeatureCollection")
    out = []
    for i, f in enumerate(feats):
        geom = (f or {}).get("geometry")
        if not geom:
            continue
        try:
            g = shape(geom)
        except Exception as exc:  # shapely raises several types for bad geometry
            raise MarsError(f"{p}: feature {i} has an invalid geometry ({exc})") from None
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            raise MarsError(f"{p}: feature {i} is a {g.geom_type}; polygons are expected")
        out.append(g)
    return out


def associate(fragments: list[BaseGeometry], shadows: list[BaseGeometry], max_distance: float = 0.0) -> tuple[
        Association, list[bool], list[bool]]:
    """Counts plus per-fragment and per-shadow match flags (for the map)."""
    if max_distance < 0:
        raise MarsError("max-distance must be >= 0")
    frag_ok = [False] * len(fragments)
    shadow_ok = [False] * len(shadows)
    if fragments and shadows:
        tree = STRtree(shadows)
        for i, f in enumerate(fragments):
            for j in tree.query(f, predicate="dwithin", distance=max_distance) if max_distance > 0 else \
                    tree.query(f, predicate="intersects"):
                frag_ok[i] = True
                shadow_ok[int(j)] = True
    a = Association(len(fragments), len(shadows), sum(frag_ok), len(fragments) - sum(frag_ok),
                    len(shadows) - sum(shadow_ok), max_distance)
    return a, frag_ok, shadow_ok


def plot_map(fragments: list[BaseGeometry], shadows: list[BaseGeometry], frag_ok: list[bool],
             shadow_ok: list[bool], out: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(7, 7))

    def draw(geoms: list[BaseGeometry], flags: list[bool], on: str, off: str) -> None:
        for g, ok in zip(geoms, flags, strict=False):
            for poly in getattr(g, "geoms", [g]):
                x, y = poly.exterior.xy
                ax.fill(x, y, color=on if ok else off, alpha=0.7, linewidth=0.5, edgecolor="k")

    draw(shadows, shadow_ok, "#555555", "#9467bd")
    draw(fragments, frag_ok, "#1f77b4", "#d62728")
    ax.legend(handles=[Patch(color="#1f77b4", label="fragment with shadow"),
                       Patch(color="#d62728", label="fragment alone"),
                       Patch(color="#555555", label="shadow matched"),
                       Patch(color="#9467bd", label="shadow alone")], loc="best", fontsize=8)
    ax.set_aspect("equal")
    ax.set_title(title or "fragment-shadow association")
    ax.set_xlabel("x (map units)")
    ax.set_ylabel("y (map units)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".part.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)


def run_association(fragments: str | Path, shadows: str | Path, max_distance: float, png: Path) -> Association:
    fr = read_polygons(fragments)
    sh = read_polygons(shadows)
    a, f_ok, s_ok = associate(fr, sh, max_distance)
    plot_map(fr, sh, f_ok, s_ok, png, title=f"association (max distance {max_distance:g})")
    return a


def as_dict(a: Association) -> dict[str, float]:
    return asdict(a)
