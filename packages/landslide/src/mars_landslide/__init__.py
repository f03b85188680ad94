"""mars-landslide: task package for mars-core."""
