"""mars-icefrag: task package for mars-core."""
