"""Configurations shipped with mars-icefrag (``mars-core run icefrag --config <file>``).

* ``icefrag-paper.yaml`` (:data:`PAPER`): the training setup as published by Su et al.
  (256-px tiles, Adam 1e-4 decayed x0.95 per epoch, 50 epochs, best checkpoint by
  validation loss), pinned by ``tests/test_configs.py``. Meant for real data and a GPU.
* ``icefrag-synthetic.yaml`` (:data:`SYNTHETIC`): the recipe that trains, on SYNTHETIC
  scenes on CPU, a model that beats the ``classical-diff`` baseline on held-out SYNTHETIC
  scenes (BENCHMARK.md gives the command and the figures).

Print a path with ``python -c "from mars_icefrag.configs import PAPER; print(PAPER)"``.
"""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).parent
PAPER = CONFIG_DIR / "icefrag-paper.yaml"
SYNTHETIC = CONFIG_DIR / "icefrag-synthetic.yaml"
