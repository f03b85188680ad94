"""Plugin module of mars-landslide (being filled in)."""
