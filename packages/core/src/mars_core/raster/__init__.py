"""Streaming whole-scene inference for scenes far larger than memory.

``predict_scene`` reads windows with rasterio, runs tiles through a model in batches,
centre-crops the overlaps, and writes a mask GeoTIFF, a probability GeoTIFF and GeoJSON
polygons block by block in the source CRS (Mars CRSs pass through unchanged).
``classify_scene`` gives classification models one probability per chunk of a scene.
"""

from mars_core.raster.classify import ClassificationResult, classify_scene
from mars_core.raster.predict import PredictionResult, predict_scene

__all__ = ["ClassificationResult", "PredictionResult", "classify_scene", "predict_scene"]
