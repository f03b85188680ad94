"""Plugin module of mars-icefrag (being filled in)."""
