"""``mars-core rsl ...``: the crawler, coregistration and the SYNTHETIC generator.

Heavy modules (httpx, OpenCV, rasterio, torch) are imported inside the commands, so
``mars-core --help`` stays fast. User mistakes are one line on stderr and exit 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

from mars_core.errors import MarsError

app = typer.Typer(help="Recurring slope lineae: HiRISE archive crawler, coregistration, SYNTHETIC series.",
                  no_args_is_help=True)


def _exit(code: int) -> None:
    """Exit with ``code``: SystemExit, because mars-core's ``main`` runs click with
    ``standalone_mode=False`` and drops the code of a ``typer.Exit`` (reported upstream)."""
    raise SystemExit(code)


def _range(spec: str | None, sep: str, what: str, cast: type) -> tuple | None:
    if spec is None:
        return None
    m = re.fullmatch(rf"\s*(-?[\d.]+)\s*{re.escape(sep)}\s*(-?[\d.]+)\s*", spec)
    if not m:
        raise MarsError(f"{what} must look like A{sep}B, got '{spec}'")
    try:
        a, b = cast(m[1]), cast(m[2])
    except ValueError:
        raise MarsError(f"{what} must look like A{sep}B with numbers, got '{spec}'") from None
    if a > b:
        raise MarsError(f"{what}: {a} is larger than {b}")
    return a, b


@app.command()
def crawl(
    archive: str = typer.Option(..., "--archive", help="volume root URL (holds RDR/, INDEX/, EXTRAS/)"),
    out: Path = typer.Option(..., "--out", help="download folder: OUT/{OBS}/{OBS}_{PRODUCT}.JP2"),
    orbits: str = typer.Option(None, "--orbits", help="orbit range A-B"),
    targets: str = typer.Option(None, "--targets", help="target codes tttt (or observation ids), comma-separated"),
    lat: str = typer.Option(None, "--lat", help="latitude range MIN:MAX (footprint overlap)"),
    product: list[str] = typer.Option(["RED"], "--product", help="RED or COLOR (repeatable)"),
    labels: bool = typer.Option(False, "--labels", help="also fetch each product's .LBL"),
    workers: int = typer.Option(4, "--workers", help="parallel downloads"),
    per_host: int = typer.Option(8, "--per-host", help="at most this many requests in flight per host"),
    retries: int = typer.Option(5, "--retries", help="retries per file on 5xx, timeouts, cut connections"),
    timeout: float = typer.Option(30.0, "--timeout", help="seconds without data before an attempt is given up"),
    backoff: float = typer.Option(0.5, "--backoff", help="first retry wait in s (doubles, with jitter)"),
    probe: bool = typer.Option(False, "--probe", help="build names from --orbits/--targets and ask the server"),
    json_out: Path = typer.Option(None, "--json", help="write the report {downloaded, skipped, missing, failed}"),
    no_progress: bool = typer.Option(False, "--no-progress", help="no progress bar"),
) -> None:
    """Find HiRISE RDR products (cumulative index or --probe) and download them resumably."""
    from mars_rsl.crawl.run import CrawlOptions, write_report
    from mars_rsl.crawl.run import crawl as run_crawl
    from mars_rsl.pds import PRODUCTS, parse_targets

    try:
        kinds = [p.upper() for p in product]
        bad = [k for k in kinds if k not in PRODUCTS]
        if bad:
            raise MarsError(f"--product must be RED or COLOR, got {', '.join(bad)}")
        if out.exists() and not out.is_dir():
            raise MarsError(f"--out {out} exists and is not a folder")
        opts = CrawlOptions(archive=archive, out=out, orbits=_range(orbits, "-", "--orbits", int),
                            targets=parse_targets(targets), lat=_range(lat, ":", "--lat", float), kinds=kinds,
                            labels=labels, workers=workers, per_host=per_host, retries=retries, timeout=timeout,
                            backoff=backoff, probe=probe)
        report = run_crawl(opts, progress=not no_progress)
    except MarsError:
        raise  # mars-core prints it on one line, exit 2
    if json_out:
        write_report(report, json_out)
    print(f"downloaded {len(report.downloaded)}, skipped {len(report.skipped)}, missing {len(report.missing)}, "
          f"failed {len(report.failed)}", file=sys.stderr)
    for pid in report.failed:
        print(f"failed: {pid}: {report.errors.get(pid, '')}", file=sys.stderr)
    _exit(report.exit_code)


@app.command()
def coregister(
    reference: Path = typer.Option(..., "--reference", help="reference image: the grid every date is put on"),
    inputs: list[Path] = typer.Option(..., "--input", help="image to register (repeatable)"),
    output: Path = typer.Option(..., "--output", help="folder: {stem}.coreg.tif, coregistration.{csv,json}"),
    model: str = typer.Option("affine", "--model", help="affine or homography"),
    min_inliers: int = typer.Option(12, "--min-inliers", help="fewer RANSAC inliers: the image is refused"),
    min_overlap: float = typer.Option(0.2, "--min-overlap", help="least fraction of the reference covered"),
    threshold: float = typer.Option(1.5, "--threshold", help="RANSAC inlier distance, px"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace existing outputs"),
) -> None:
    """Tie points (SIFT) + RANSAC fit + resampling of each input onto the reference grid."""
    from mars_rsl.coregister import coregister as run

    for p in [reference, *inputs]:
        if not p.exists():
            raise MarsError(f"file not found: {p}")
    results = run(reference, list(inputs), output, model=model, min_inliers=min_inliers,  # type: ignore[arg-type]
                  min_overlap=min_overlap, threshold=threshold, overwrite=overwrite)
    for r in results:
        print(f"{Path(r.input).name}: {r.inliers} inliers of {r.matches} matches, RMSE {r.rmse_px:.3f} px",
              file=sys.stderr)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="empty output folder: site_XXX/dNN.tif, rsl_dNN.tif, change_dNN.tif"),
    sites: int = typer.Option(10, "--sites", min=1),
    size: int = typer.Option(256, "--size", min=64),
    dates: int = typer.Option(4, "--dates", min=2),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write SYNTHETIC RSL time series (uint16 10-bit DN, 0.5 m/px, Mars equirectangular) with masks."""
    from mars_rsl.synthetic import write_sites

    keys = write_sites(out, sites, size, dates, seed)
    print(f"wrote {len(keys)} SYNTHETIC site(s) of {dates} dates to {out}", file=sys.stderr)
