"""How results are shown and written: short rich tables, and JSON written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mars_core.errors import MarsError

console = Console(highlight=False)


def metrics_table(metrics: dict[str, dict[str, float]], title: str) -> Table:
    """One row per metric, one column per split: stays readable in 80 columns."""
    names: list[str] = []
    for values in metrics.values():
        for name in values:
            if name not in names:
                names.append(name)
    table = Table(title=title)
    table.add_column("metric")
    for split in metrics:
        table.add_column(split, justify="right")
    for name in names:
        table.add_row(name, *(_fmt(metrics[split].get(name)) for split in metrics))
    return table


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON via a temporary file in the same directory, then rename."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise MarsError(f"cannot write {path}: directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True, default=float)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def paths_table(rows: list[tuple[str, str]], title: str = "written") -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("what")
    table.add_column("where")
    for what, where in rows:
        table.add_row(what, where)
    return table
