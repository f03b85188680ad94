"""mars-glacier: task package for mars-core."""
