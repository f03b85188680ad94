"""``mars-core glacier ...``: temporal comparison, stacking, SYNTHETIC second dates.

Heavy modules (torch, rasterio) are imported inside the commands: this module is imported
on every ``mars-core`` start.
"""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Glacier extent: compare two dates, stack RGB + NIR, write a SYNTHETIC date.",
                  no_args_is_help=True)


@app.command()
def compare(
    model: str = typer.Option(..., "--model", help="models:/mars-glacier@champion, runs:/ID/model or a folder."),
    date1: Path = typer.Option(..., "--date1", help="First date: 4-band GeoTIFF, the RGB file of an RGB + B4 "
                               "pair, or a folder of one scene."),
    date2: Path = typer.Option(..., "--date2", help="Second date, same forms; resampled onto date1's grid "
                               "(with a warning) when on another grid."),
    outlines: Path = typer.Option(..., "--outlines", help="Glacier outlines (GPKG, GeoJSON, Shapefile; any CRS)."),
    output: Path = typer.Option(..., "--output", help="Folder to write (areas.csv, change.tif, change.geojson, "
                                "change.png, date1/date2 predictions, summary.json)."),
    layer: str | None = typer.Option(None, "--layer", help="Layer of the outlines file."),
    label1: str | None = typer.Option(None, "--label1", help="How date 1 is named in the products."),
    label2: str | None = typer.Option(None, "--label2", help="How date 2 is named (a SYNTHETIC date is "
                                      "labelled SYNTHETIC whatever this says)."),
    tile: int | None = typer.Option(None, "--tile", min=8),
    overlap: float = typer.Option(0.25, "--overlap", min=0.0, max=0.9),
    threshold: float | None = typer.Option(None, "--threshold", min=0.0, max=1.0),
    min_pixels: int = typer.Option(4, "--min-pixels", min=0, help="Smaller change polygons are left out "
                                   "of change.geojson (not out of the areas)."),
    device: str = typer.Option("auto", "--device"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output folder."),
) -> None:
    """Glacier area per outline (RGIId) at two dates and its change, with maps."""
    from mars_core.engine import resolve_device
    from mars_glacier.compare import compare as run_compare

    summary = run_compare(model, date1, date2, outlines, output, overwrite=overwrite, tile=tile, overlap=overlap,
                          threshold=threshold, device=str(resolve_device(device)), min_pixels=min_pixels,
                          layer=layer, label1=label1, label2=label2)
    typer.echo(f"{summary['glaciers']} glaciers: {summary['area_km2_date1']:.3f} km2 ({summary['date1']['label']}) "
               f"-> {summary['area_km2_date2']:.3f} km2 ({summary['date2']['label']}); written to {output}")


@app.command()
def stack(
    scene: Path = typer.Option(..., "--scene", help="RGB file of an RGB + B4 pair, or a folder of one scene."),
    output: Path = typer.Option(..., "--output", help="4-band GeoTIFF (red, green, blue, nir) to write."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Stack an RGB + B4 (NIR) pair into one 4-band GeoTIFF, e.g. for `mars-core predict glacier`."""
    import os
    import shutil
    import tempfile

    from mars_core.errors import MarsError
    from mars_glacier.stacking import resolve_scene

    if output.exists() and not overwrite:
        raise MarsError(f"output {output} already exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise MarsError(f"output folder {output.parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        made = resolve_scene(scene, tmp)
        if made.parent != tmp:
            shutil.copyfile(made, tmp / "copy.tif")
            made = tmp / "copy.tif"
        os.replace(made, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    typer.echo(f"wrote {output} (bands red, green, blue, nir)")


@app.command()
def synthetic(
    scene: Path = typer.Option(..., "--scene", help="Real scene: 4-band GeoTIFF, RGB file of a pair, or folder."),
    outlines: Path = typer.Option(..., "--outlines"),
    output: Path = typer.Option(..., "--output", help="SYNTHETIC 4-band GeoTIFF to write (+ .truth.tif)."),
    retreat_px: int = typer.Option(6, "--retreat-px", min=1, help="Every outline eroded by this many pixels."),
    overwrite: bool = typer.Option(False, "--overwrite"),
) -> None:
    """Write a SYNTHETIC second date: the scene with every glacier's margin retreated."""
    import shutil
    import tempfile

    from mars_glacier.stacking import resolve_scene
    from mars_glacier.synthetic import make_synthetic

    tmp = Path(tempfile.mkdtemp(prefix=".glacier-synthetic-"))
    try:
        made = make_synthetic(resolve_scene(scene, tmp), outlines, output, retreat_px, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    typer.echo(f"wrote SYNTHETIC {made} and {made.with_name(made.stem + '.truth.tif').name}")
