"""Generic model builders that several task packages share (imported lazily, on first use)."""
