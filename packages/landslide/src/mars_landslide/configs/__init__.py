"""Run configurations shipped with mars-landslide, for ``mars-core run landslide --config PATH``.

They are YAML files merged over the task's defaults (``landslide.yaml``); the constants below
give their installed paths, so a script need not guess where the package lives.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent
#: MarsLS-Net L-5 trained as the paper says (see the YAML and the package README).
MARSLSNET_PAPER = CONFIG_DIR / "marslsnet-paper.yaml"
