"""mars-rsl: task package for mars-core."""
