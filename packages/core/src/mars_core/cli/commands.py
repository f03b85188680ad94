"""Core commands. Heavy imports (torch, mlflow, rasterio) happen inside the commands so
that ``mars-core --help`` and ``mars-core tasks`` stay fast."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from mars_core.cli.output import console, metrics_table, paths_table, write_json_atomic
from mars_core.cli.sweep_command import sweep
from mars_core.errors import MarsError

app = typer.Typer(
    name="mars-core",
    help="Deep learning on planetary remote-sensing imagery: train, evaluate and predict Mars tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON.")) -> None:
    """List loaded plugins, their distributions and what each registered."""
    from mars_core.plugins import get_plugin_manager, get_registries, owner_of

    pm = get_plugin_manager()
    regs = get_registries()
    report: list[dict[str, Any]] = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda kv: kv[0]):
        owner = owner_of(pm, plugin)
        registered = {
            kind: [e.name for e in registry if e.owner.plugin == name] for kind, registry in regs.all().items()
        }
        report.append({
            "name": name,
            "distribution": owner.distribution,
            "version": owner.version,
            "registered": {k: v for k, v in registered.items() if v},
        })
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title="mars-core plugins")
    for col in ("plugin", "distribution", "version", "registered"):
        table.add_column(col)
    for row in report:
        what = "; ".join(f"{k}: {', '.join(v)}" for k, v in row["registered"].items()) or "(nothing)"
        table.add_row(row["name"], row["distribution"] or "-", row["version"] or "-", what)
    console.print(table)


@app.command()
def tasks() -> None:
    """List the installed tasks."""
    from mars_core.plugins import get_registries

    regs = get_registries()
    table = Table(title="tasks")
    for col in ("task", "kind", "distribution", "description"):
        table.add_column(col)
    for entry in regs.tasks:
        spec = entry.value
        table.add_row(spec.name, spec.kind.value, spec.distribution, spec.description)
    console.print(table)
    if not len(regs.tasks):
        console.print("no task installed: a task comes from its own package, usually named mars-<task>")
    idle = [str(owner) for owner in regs.plugins_without_task()]
    if idle:
        console.print(f"plugins registering no task: {', '.join(idle)}")


@app.command()
def run(
    task: str = typer.Argument(..., help="Task name, as 'mars-core tasks' lists it."),
    data: Path | None = typer.Option(None, "--data", help="Dataset root; default: the task's bundled sample."),
    config: Path | None = typer.Option(None, "--config", help="YAML file merged over the task's defaults."),
    overrides: list[str] = typer.Option([], "--set", help="Override a key: --set trainer.epochs=5 (repeatable)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write run_id, model_uri and metrics as JSON."),
) -> None:
    """Train, evaluate, log to MLflow and register the model: the main job."""
    from mars_core.config import load_task_config
    from mars_core.plugins import get_registries

    spec = get_registries().task(task)
    if data is not None and not data.exists():
        raise MarsError(f"--data path does not exist: {data}")
    cfg = load_task_config(spec.default_config, config, overrides, str(data) if data is not None else None)
    _place_checkpoints(cfg)

    from mars_core.engine import train

    tracker = _make_tracker(cfg)
    summary = train(cfg, tracker)
    metrics = summary.metrics
    console.print(metrics_table(metrics, title=f"{task}: {cfg.model.name}, best {summary.monitor}="
                                f"{_fmt(summary.best_value)} at epoch {summary.best_epoch}"))
    rows = [("checkpoints", str(Path(cfg.trainer.checkpoint_dir).resolve()))]
    if summary.run_id:
        rows.append(("mlflow run", summary.run_id))
        rows.append(("tracking store", _tracking_uri()))
    if summary.model_uri:
        rows.append(("model", summary.model_uri))
    if summary.extra.get("registered_model"):
        moved = "champion moved here" if summary.extra.get("champion_moved") else "champion unchanged"
        rows.append(("registered", f"{summary.extra['registered_model']} v{summary.extra.get('model_version')} "
                                   f"({moved})"))
    if json_out is not None:
        write_json_atomic(json_out, {"run_id": summary.run_id, "model_uri": summary.model_uri, "metrics": metrics,
                                     **_health_fields(summary.extra)})
        rows.append(("results", str(json_out)))
    console.print(paths_table(rows))
    _warn_degenerate(summary.extra)


def _health_fields(verdict: dict[str, Any]) -> dict[str, Any]:
    return {k: verdict.get(k) for k in ("degenerate", "degenerate_reason", "prediction_health")}


def _warn_degenerate(verdict: dict[str, Any]) -> None:
    """Said last and in words, so it is the line a user reads: the metrics above may look
    fine for a model that outputs one constant."""
    if verdict.get("degenerate"):
        console.print(f"[bold red]DEGENERATE MODEL[/]: {verdict.get('degenerate_reason')}; "
                      "its metrics mean little and it was not made the champion", soft_wrap=True)


app.command(name="sweep")(sweep)  # the command lives in cli/sweep_command.py


@app.command()
def evaluate(
    task: str = typer.Argument(...),
    model: str = typer.Option(..., "--model", help="models:/mars-<task>@champion, models:/NAME/VERSION, "
                              "runs:/ID/model or a local model directory."),
    data: Path = typer.Option(..., "--data", help="Dataset root in the task's layout."),
    split: str = typer.Option("test", "--split"),
    json_out: Path | None = typer.Option(None, "--json"),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1),
    device: str = typer.Option("auto", "--device"),
    overrides: list[str] = typer.Option([], "--set", help="An eval-time setting of the stored model, e.g. "
                                        "--set 'model.tta_scales=[1.0]' (repeatable; weights are kept)."),
) -> None:
    """Evaluate a logged model on a split of a dataset."""
    from mars_core.cli.classify_command import with_model_settings
    from mars_core.engine import evaluate_model, resolve_device
    from mars_core.engine.health import PredictionHealth, summarise_health
    from mars_core.plugins import get_registries
    from mars_core.registry import call_factory

    regs = get_registries()
    spec = regs.task(task)
    if not data.exists():
        raise MarsError(f"--data path does not exist: {data}")
    loaded = with_model_settings(_load_model(model, task), overrides, "evaluate")
    cfg = loaded.cfg
    source = call_factory("data source", cfg.data.name, regs.datasources.get(cfg.data.name),
                          {"root": str(data), **cfg.data.params})
    available = list(source.splits())
    if split not in available:
        raise MarsError(f"split '{split}' not found under {data}; available: {', '.join(available) or 'none'}")
    _check_contract(loaded.contract, source.input_contract(), model)
    health = PredictionHealth(spec.kind)
    values = evaluate_model(loaded.model, spec.kind, source.dataset(split), cfg.metrics,
                            batch_size=batch_size or cfg.trainer.batch_size, device=resolve_device(device),
                            registries=regs, contract=loaded.contract, health=health)
    verdict = summarise_health({split: health.compute()})
    metrics = {split: values}
    console.print(metrics_table(metrics, title=f"{task}: {model} on {data} ({split})"))
    if json_out is not None:
        write_json_atomic(json_out, {"run_id": None, "model_uri": model, "metrics": metrics,
                                     **_health_fields(verdict)})
        console.print(paths_table([("results", str(json_out))]))
    if verdict["degenerate"]:
        console.print(f"[bold red]DEGENERATE PREDICTIONS[/]: {verdict['degenerate_reason']}", soft_wrap=True)


@app.command()
def predict(
    task: str = typer.Argument(...),
    model: str = typer.Option(..., "--model"),
    inputs: list[Path] = typer.Option(..., "--input", help="Scene GeoTIFF; for change detection give one per "
                                      "date (the model's T, oldest first)."),
    output: Path = typer.Option(..., "--output", help="Mask GeoTIFF to write (.prob.tif and .geojson go beside "
                                "it); for classification the directory for chunks.geojson/.csv and summary.json."),
    times: list[str] = typer.Option([], "--time", help="Acquisition date of each --input (ISO 8601), in the "
                                    "same order; default: the inputs' ACQUISITION_TIME-like or DateTime tags."),
    tile: int | None = typer.Option(None, "--tile", min=8),
    overlap: float = typer.Option(0.25, "--overlap", min=0.0, max=0.9),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Default 8 (classification: "
                                          "the model's predict.batch_size)."),
    chunk: int | None = typer.Option(None, "--chunk", min=1, help="Classification: chunk edge in scene pixels."),
    input_size: int | None = typer.Option(None, "--input-size", min=1, help="Classification: the model's "
                                          "input edge; each chunk is resampled (antialiased) to it."),
    chunk_overlap: float | None = typer.Option(None, "--chunk-overlap", min=0.0, max=0.95,
                                               help="Classification: fraction of a chunk shared with a neighbour."),
    overrides: list[str] = typer.Option([], "--set", help="Classification: override the model's predict "
                                        "settings, e.g. --set predict.summary.threshold=0.3, or an eval-time "
                                        "model setting, e.g. --set model.tta=false (repeatable)."),
    device: str = typer.Option("auto", "--device"),
    threshold: float | None = typer.Option(None, "--threshold", min=0.0, max=1.0),
    min_area: float = typer.Option(0.0, "--min-area", min=0.0, help="Leave polygons smaller than this "
                                   "many m² out of the GeoJSON (needs a projected or geographic CRS)."),
    min_pixels: int | None = typer.Option(None, "--min-pixels", min=0, help="Leave polygons of fewer pixels "
                                          "out of the GeoJSON; default: the model's min_component_px, else 0."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    channels_last: bool = typer.Option(True, "--channels-last/--no-channels-last",
                                       help="Run the model on NHWC tensors (faster convolutions)."),
    probability: str = typer.Option("uint8", "--probability", help="Probability raster: uint8 (p = DN/254, "
                                    "255 nodata, GDAL scale tag set) or float32 (nodata NaN)."),
    optimise: bool = typer.Option(True, "--optimise/--no-optimise", help="Fold batch norms into convolutions "
                                  "(same outputs to float rounding; checked on the first tile)."),
    precision: str = typer.Option("float32", "--precision", help="float32, or bfloat16 (about 2x faster on "
                                  "CPUs with AVX512-BF16/AMX; probabilities change in the 3rd-4th decimal)."),
    threads: int | None = typer.Option(None, "--threads", min=1, help="CPU threads for the model (default: "
                                       "torch's, one per core). On cores shared with other jobs 1 can be "
                                       "twice as fast as 2 (the core's BENCHMARK.md)."),
) -> None:
    """Stream whole scenes through a model into GeoTIFF + GeoJSON (maps), or per-chunk classes
    into GeoJSON + CSV + a scene summary (classification)."""
    from mars_core.engine import resolve_device
    from mars_core.plugins import get_registries
    from mars_core.raster import predict_scene

    spec = get_registries().task(task)
    for path in inputs:
        if not path.exists():
            raise MarsError(f"input not found: {path}")
    loaded = _load_model(model, task)
    if times and spec.kind.value != "change_detection":
        raise MarsError("--time applies to change detection only")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    if spec.kind.value == "classification":
        if precision != "float32" or not optimise:
            raise MarsError("--precision and --no-optimise apply to segmentation and change detection only")
        from mars_core.cli.classify_command import classify

        classify(spec, loaded, inputs, output, chunk=chunk, input_size=input_size, overlap=chunk_overlap,
                 batch_size=batch_size, device=resolve_device(device), overrides=overrides, overwrite=overwrite)
        return
    if overrides or chunk is not None or input_size is not None or chunk_overlap is not None:
        raise MarsError("--set, --chunk, --input-size and --chunk-overlap apply to classification tasks only")
    if min_pixels is None:
        min_pixels = int((loaded.contract.model_extra or {}).get("min_component_px") or 0)
    result = predict_scene(loaded.model, loaded.contract, inputs, output, tile=tile, overlap=overlap,
                           batch_size=batch_size or 8, device=resolve_device(device), threshold=threshold,
                           min_area_m2=min_area, min_area_px=min_pixels, overwrite=overwrite, progress=True,
                           channels_last=channels_last, probability=probability, times=times or None,
                           optimise=optimise, precision=precision)
    rows = [(k, str(v)) for k, v in _result_rows(result)]
    console.print(paths_table(rows, title=f"{task}: prediction"))


@app.command()
def models(task: str | None = typer.Argument(None, help="Only this task's registered model.")) -> None:
    """List registered model versions, aliases and key metrics."""
    from mars_core.tracking import list_models

    rows = list_models(task)
    if not rows:
        console.print(f"no registered models{f' for task {task}' if task else ''} in {_tracking_uri()}")
        return
    table = Table(title=f"registered models ({_tracking_uri()})", caption="* monitored metric")
    for col in ("model", "v", "aliases", "created", "metrics"):
        table.add_column(col, overflow="fold")
    for row in rows:
        monitored = f"*{row.get('monitor')}={_fmt(row.get('monitor_value'))}" if row.get("monitor") else ""
        created = str(row.get("created") or "-")[:16].replace("T", " ")
        table.add_row(row.get("name") or "-", str(row.get("version")), _fmt(row.get("aliases")), created,
                      "\n".join(x for x in (monitored, _key_metrics({k: v for k, v in (row.get("metrics") or {}).items()
                                                     if k != row.get("monitor")})) if x))
    console.print(table)


def _key_metrics(metrics: dict[str, Any], limit: int = 3) -> str:
    """A few headline figures, test split first: the full set is in MLflow."""
    preferred = [f"{split}/{name}" for split in ("test", "val") for name in ("miou", "f1", "iou", "loss")]
    keys = [k for k in preferred if k in metrics][:limit] or sorted(metrics)[:limit]
    return "\n".join(f"{k}={_fmt(metrics[k])}" for k in keys)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def _place_checkpoints(cfg: Any) -> None:
    """Give every run its own checkpoint directory so no run overwrites another's.

    ``trainer.checkpoint_dir`` is the base; a fresh run writes to ``<base>/<task>/<time>``.
    ``trainer.resume=last`` continues the newest run of the task under the base, and a
    checkpoint path continues the run that wrote it.
    """
    import time

    base = Path(cfg.trainer.checkpoint_dir) / cfg.task
    resume = cfg.trainer.resume
    if resume == "last":
        candidates = sorted(base.glob("*/last.pt"), key=lambda p: p.stat().st_mtime)
        if not candidates:
            raise MarsError(f"trainer.resume=last: no checkpoint of task '{cfg.task}' under {base}")
        cfg.trainer.resume = str(candidates[-1])
        cfg.trainer.checkpoint_dir = str(candidates[-1].parent)
    elif resume:
        path = Path(resume)
        if not path.is_file():
            raise MarsError(f"trainer.resume: no checkpoint at {path}")
        cfg.trainer.checkpoint_dir = str(path.parent)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir, n = base / stamp, 1
        while run_dir.exists():
            n += 1
            run_dir = base / f"{stamp}-{n}"
        cfg.trainer.checkpoint_dir = str(run_dir)


def _tracking_uri() -> str:
    from mars_core.tracking import tracking_uri

    return tracking_uri()


def _make_tracker(cfg: Any) -> Any:
    if not cfg.tracking.enabled:
        return None
    from mars_core.tracking import MlflowTracker

    return MlflowTracker(timeout_s=cfg.tracking.timeout_s)


def _load_model(uri: str, task: str) -> Any:
    from mars_core.tracking import load_model

    loaded = load_model(uri)
    if loaded.cfg.task != task:
        raise MarsError(f"model {uri} was trained for task '{loaded.cfg.task}', not '{task}'")
    return loaded


def _check_contract(expected: Any, actual: Any, uri: str) -> None:
    """Refuse data that the model would misread, naming what differs."""
    problems = []
    if list(actual.bands) != list(expected.bands):
        problems.append(f"bands {actual.bands} != model's {expected.bands}")
    if actual.normalisation != expected.normalisation:
        problems.append("normalisation differs from the model's")
    if problems:
        raise MarsError(f"data does not match the input contract of {uri}: {'; '.join(problems)}")


def _result_rows(result: Any) -> list[tuple[str, Any]]:
    from dataclasses import asdict, is_dataclass

    data = asdict(result) if is_dataclass(result) else dict(vars(result))
    return [(k, v) for k, v in data.items() if v is not None]
