"""Geospatial training data: scenes, labels, tiles and spatial splits for task packages.

The one place where a task package gets GeoTIFF training data (see the core README,
"Geospatial training data"): a task configures it, it does not re-implement it.

* :class:`GeoScene` named bands stacked from one or more files of one date, one grid;
  :class:`TimeSeries` T scenes of one site with acquisition times.
* :class:`RasterLabels`, :class:`VectorLabels` -> ``bind(scene)`` -> uint8 windows with
  :data:`IGNORE` (255) where a pixel must not count.
* :func:`scene_split` (by scene / group), :func:`block_split` (blocks of one scene with a
  gap), :func:`spatial_folds` + :func:`fold_split` (k-fold cross-validation of blocks),
  :func:`scene_windows` (``split: all``, whole scenes in non-overlapping tiles).
* :class:`TileDataset` yields ``image`` (or ``image1..imageT``) and ``mask``.
* :func:`check_same_grid`, :func:`same_crs`: the one grid check.
"""

from mars_core.geodata.dataset import TileDataset
from mars_core.geodata.grid import check_same_grid, same_crs
from mars_core.geodata.labels import RasterLabels, VectorLabels, read_vector
from mars_core.geodata.normalise import percentiles, scene_normalisation
from mars_core.geodata.scene import GeoScene, TimeSeries, parse_time
from mars_core.geodata.splits import BlockSplit, block_split, fold_split, scene_split, spatial_folds
from mars_core.geodata.windows import TileWindow, owned_count, region_windows, scene_windows
from mars_core.masking import IGNORE

__all__ = [
    "IGNORE", "BlockSplit", "GeoScene", "RasterLabels", "TileDataset", "TileWindow", "TimeSeries", "VectorLabels",
    "block_split", "check_same_grid", "fold_split", "owned_count", "parse_time", "percentiles", "read_vector",
    "region_windows", "same_crs", "scene_normalisation", "scene_split", "scene_windows", "spatial_folds",
]
