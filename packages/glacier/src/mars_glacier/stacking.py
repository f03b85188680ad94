"""One 4-band raster (red, green, blue, nir) from whatever the user points at.

The core's streaming predictor reads one raster per date; a Landsat delivery of this task
is two files (``*_RGB_*`` + ``*_B4_*``). ``resolve_scene`` accepts a 4-band GeoTIFF, the
RGB file of a pair (its ``_B4_`` partner is found by name), or a folder holding exactly one
scene, and returns a 4-band raster path, stacking a pair into ``workdir`` (block by block,
so the scene's size does not matter) after the core's grid check of the two files.
"""

from __future__ import annotations

from pathlib import Path

from mars_core.errors import MarsError
from mars_glacier.scenes import BANDS, RASTER_SUFFIXES, find_scenes, open_scene

SYNTHETIC_TAG = "SYNTHETIC"


def scene_files(path: Path) -> tuple[str, dict[str, Path]]:
    """(scene key, files) for a 4-band file, one file of a pair, or a folder of one scene."""
    if not path.exists():
        raise MarsError(f"scene not found: {path}")
    if path.is_dir():
        scenes = find_scenes(path)
        if len(scenes) != 1:
            raise MarsError(f"{path} holds {len(scenes)} scenes ({', '.join(sorted(scenes))}); give one scene")
        return next(iter(scenes.items()))
    if path.suffix.lower() not in RASTER_SUFFIXES:
        raise MarsError(f"{path.name} is not a GeoTIFF scene (.tif)")
    scenes = find_scenes(path.parent)
    for key, files in scenes.items():
        if path.resolve() in {p.resolve() for p in files.values()}:
            return key, files
    raise MarsError(f"{path.name}: no scene found for it in {path.parent}")  # pragma: no cover


def resolve_scene(path: Path, workdir: Path) -> Path:
    """A 4-band (red, green, blue, nir) raster for ``path`` (see the module docstring)."""
    import rasterio

    key, files = scene_files(Path(path))
    scene = open_scene(key, files)  # band counts and the RGB/NIR grid check, as for training
    if "stack" in files:
        return files["stack"]
    out = workdir / f"{key}_stack.tif"
    with rasterio.open(files["rgb"]) as rgb, rasterio.open(files["nir"]) as nir:
        profile = {**rgb.profile, "count": 4, "driver": "GTiff", "tiled": True, "blockxsize": 256,
                   "blockysize": 256, "compress": "deflate"}
        tags = {**nir.tags(), **rgb.tags()}
        with rasterio.open(out, "w", **profile) as dst:
            for _, window in dst.block_windows(1):
                dst.write(rgb.read(window=window), [1, 2, 3], window=window)
                dst.write(nir.read(1, window=window), 4, window=window)
            dst.update_tags(**tags)
            dst.descriptions = tuple(BANDS)
    del scene
    return out


def synthetic_label(path: Path) -> str | None:
    """The SYNTHETIC description a raster carries in its tags (written by ``glacier synthetic``)."""
    import rasterio

    with rasterio.open(path) as ds:
        return ds.tags().get(SYNTHETIC_TAG)
