"""``mars-core glacier ...``: temporal comparison, stacking, SYNTHETIC second dates.

Heavy modules (torch, rasterio) are imported inside the commands: this module is imported
on every ``mars-core`` start.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Glacier extent: compare two dates, stack RGB + NIR, write a SYNTHETIC date.",
                  no_args_is_help=True)
