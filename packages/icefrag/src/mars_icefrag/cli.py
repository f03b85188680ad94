"""``mars-core icefrag ...``: commands this package adds to the core CLI."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mars_core.errors import MarsError

app = typer.Typer(help="Detached ice-fragment tools (Su et al.): association analysis, SYNTHETIC scenes.",
                  no_args_is_help=True)
console = Console()


def _fail(exc: MarsError) -> None:
    console.print(f"[red]error:[/red] {exc}")
    raise typer.Exit(exc.exit_code)


@app.command()
def associate(
    fragments: Path = typer.Option(..., "--fragments", help="GeoJSON of fragment polygons"),
    shadows: Path = typer.Option(..., "--shadows", help="GeoJSON of shadow polygons"),
    max_distance: float = typer.Option(0.0, "--max-distance", help="match distance in map units (m); 0 = touching"),
    out: Path = typer.Option(None, "--out", help="PNG map (default: <fragments>.association.png)"),
) -> None:
    """Count fragments with a shadow, fragments alone and shadows alone; write a map."""
    from mars_icefrag.associate import as_dict, run_association

    png = out or fragments.with_name(fragments.stem + ".association.png")
    try:
        a = run_association(fragments, shadows, max_distance, png)
    except MarsError as exc:
        _fail(exc)
        return
    table = Table(title="fragment-shadow association")
    table.add_column("count")
    table.add_column("value", justify="right")
    for k, v in as_dict(a).items():
        table.add_row(k, f"{v:g}")
    console.print(table)
    js = png.with_suffix(".json")
    js.write_text(json.dumps(as_dict(a), indent=1))
    console.print(f"map: {png}\ncounts: {js}")


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="output folder (t1/, t2/, mask/ are created)"),
    scenes: int = typer.Option(5, "--scenes", min=1),
    size: int = typer.Option(512, "--size", min=64),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write SYNTHETIC scene pairs (uint16, 0.25 m/px, Mars stereographic) with masks."""
    from mars_icefrag.synthetic import write_scenes

    keys = write_scenes(out, scenes, size, seed)
    console.print(f"wrote {len(keys)} SYNTHETIC scene pair(s) to {out}: {', '.join(keys)}")
