"""Streaming whole-scene inference for scenes far larger than memory.

``predict_scene`` reads windows with rasterio, runs tiles through a model in batches,
centre-crops the overlaps, and writes a mask GeoTIFF, a probability GeoTIFF and GeoJSON
polygons block by block in the source CRS (Mars CRSs pass through unchanged).
"""

from mars_core.raster.predict import PredictionResult, predict_scene

__all__ = ["PredictionResult", "predict_scene"]
