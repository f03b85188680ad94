"""mars-icepatch: task package for mars-core."""
