"""``mars-core predict`` for classification tasks: settings from the model's stored
``predict`` section, then ``--set predict.*``, then the flags; ``--set model.*`` rebuilds the
stored model with eval-time settings changed; the task's chunk filter and summariser are
imported here, only now."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.table import Table

from mars_core.cli.output import console, paths_table
from mars_core.config import PredictConfig, format_validation_error, merge, parse_override
from mars_core.errors import MarsError


def is_model_setting(path: list[str]) -> bool:
    """``model.KEY``: one parameter of the stored model (no deeper key), the only form
    :func:`with_model_settings` applies."""
    return path[0] == "model" and len(path) == 2


def predict_settings(stored: PredictConfig, overrides: list[str]) -> PredictConfig:
    """``stored`` with ``--set predict.KEY=VALUE`` applied (``model.*`` items are left to
    :func:`with_model_settings`); any other key is refused."""
    data: dict[str, Any] = stored.model_dump(mode="json")
    for item in overrides:
        path, value = parse_override(item)
        if is_model_setting(path):
            continue
        if path[0] != "predict" or len(path) < 2:
            raise MarsError(f"predict takes --set predict.KEY=VALUE or model.KEY=VALUE only, got '{item}'")
        node: Any = value
        for part in reversed(path[1:]):
            node = {part: node}
        data = merge(data, node)
    try:
        return PredictConfig.model_validate(data)
    except ValidationError as exc:
        raise MarsError(format_validation_error(exc).replace("  ", " ")) from None


def with_model_settings(loaded: Any, overrides: list[str], command: str | None = None) -> Any:
    """``loaded`` rebuilt with ``--set model.KEY=VALUE`` applied and its own weights loaded
    strictly. Why: some model parameters act only at inference (icepatch's test-time scales
    cost 5x one scale), and a user with a stored model should not have to retrain to trade
    them for speed. A parameter that changes the weights fails the strict load: refused.
    With ``command``, any other ``--set`` is refused in that command's name (predict, which
    has predict.* settings too, checks those itself)."""
    from mars_core.config import Component
    from mars_core.tracking.model_io import build_model

    parsed = [(item, *parse_override(item)) for item in overrides]
    other = [item for item, path, _ in parsed if not is_model_setting(path)]
    if command is not None and other:
        raise MarsError(f"--set {other[0]}: {command} takes model.KEY=VALUE only")
    sets = [(item, path, value) for item, path, value in parsed if is_model_setting(path)]
    if not sets:
        return loaded
    params = dict(loaded.cfg.model.params)
    for item, path, value in sets:
        if path[1] in ("name", "in_channels", "num_classes", "subclasses"):
            raise MarsError(f"--set {item}: cannot change model.{path[1]} of a trained model")
        params[path[1]] = value
    cfg = loaded.cfg.model_copy(update={"model": Component(name=loaded.cfg.model.name, **params)})
    model = build_model(cfg, loaded.contract)
    try:
        model.load_state_dict(loaded.model.state_dict())
    except RuntimeError:
        keys = ", ".join(f"model.{path[1]}" for _, path, _ in sets)
        raise MarsError(f"--set {keys} changes the network's weights; only settings that keep them "
                        "(e.g. test-time augmentation) can change on a trained model") from None
    return replace(loaded, model=model.eval(), cfg=cfg)


def classify(spec: Any, loaded: Any, inputs: list[Path], output: Path, *, chunk: int | None,
             input_size: int | None, overlap: float | None, batch_size: int | None, device: Any,
             overrides: list[str], overwrite: bool) -> None:
    from mars_core.raster.classify import classify_scene, load_callable

    if len(inputs) != 1:
        raise MarsError(f"a classification model takes one --input scene, got {len(inputs)}")
    settings = predict_settings(loaded.cfg.predict, overrides)
    loaded = with_model_settings(loaded, overrides)
    chunk_filter = load_callable(spec.chunk_filter, "chunk filter") if spec.chunk_filter else None
    summariser = load_callable(spec.scene_summariser, "scene summariser") if spec.scene_summariser else None
    result = classify_scene(
        loaded.model, loaded.contract, inputs[0], output,
        chunk=chunk or settings.chunk, input_size=input_size or settings.input_size,
        overlap=settings.overlap if overlap is None else overlap, batch_size=batch_size or settings.batch_size,
        device=device, chunk_filter=chunk_filter, summariser=summariser, filter_params=settings.filter,
        summary_params=settings.summary, overwrite=overwrite,
    )
    table = Table(title=f"{spec.name}: {inputs[0].name}")
    for col in ("chunks", "classified", "skipped", "seconds"):
        table.add_column(col, justify="right")
    table.add_row(str(result.n_chunks), str(result.n_classified), str(result.n_skipped), f"{result.seconds:.1f}")
    console.print(table)
    summary = ", ".join(f"{k}={v}" for k, v in result.summary_values.items() if not isinstance(v, (dict, list)))
    rows = [("chunks (GeoJSON)", str(result.geojson)), ("chunks (CSV)", str(result.csv)),
            ("summary", str(result.summary))]
    if summary:
        rows.append(("result", summary))
    console.print(paths_table(rows, title=f"{spec.name}: classification"))
