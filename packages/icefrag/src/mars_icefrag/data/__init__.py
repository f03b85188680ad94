"""Data sources of mars-icefrag."""

from mars_icefrag.data.pairs import IcefragPairs, icefrag_pairs

__all__ = ["IcefragPairs", "icefrag_pairs"]
