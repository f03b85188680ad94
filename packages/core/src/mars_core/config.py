"""Typed run configuration: task defaults ← user YAML ← ``--set`` overrides.

Every error names the offending key and, where the set is closed, the allowed values:
a user who wrote ``trainer.sheduler`` should learn which keys exist, not read a traceback.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mars_core.errors import MarsError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Component(BaseModel):
    """A registered component by name; every other key is a parameter of its factory."""

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class DataConfig(Component):
    root: str | None = None


class SchedulerConfig(_Strict):
    """Learning-rate schedule. ``onecycle`` is the only one updated every optimiser step
    (Smith & Topin's one-cycle: cosine up from ``lr/div_factor`` to ``lr`` over
    ``pct_start`` of training, then cosine down to ``lr/(div_factor*final_div_factor)``);
    the others change once per epoch."""

    name: Literal["none", "step", "exponential", "cosine", "onecycle"] = "none"
    step_size: int = Field(default=10, gt=0)
    gamma: float = Field(default=0.5, gt=0)
    min_lr: float = Field(default=0.0, ge=0)
    warmup_epochs: int = Field(default=0, ge=0)
    pct_start: float = Field(default=0.3, gt=0, lt=1)
    div_factor: float = Field(default=25.0, ge=1)
    final_div_factor: float = Field(default=1e4, ge=1)

    @model_validator(mode="after")
    def _onecycle_has_its_own_warmup(self) -> SchedulerConfig:
        if self.name == "onecycle" and self.warmup_epochs:
            raise ValueError("onecycle warms up by itself over pct_start; set warmup_epochs to 0")
        return self


class EarlyStoppingConfig(_Strict):
    patience: int | None = Field(default=None, gt=0)
    min_delta: float = Field(default=0.0, ge=0)


class TrainerConfig(_Strict):
    epochs: int = Field(default=10, gt=0)
    batch_size: int = Field(default=16, gt=0)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    momentum: float = Field(default=0.9, ge=0)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    grad_clip: float | None = Field(default=None, gt=0)
    monitor: str = "val/loss"
    mode: Literal["min", "max"] = "min"
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    num_workers: int = Field(default=0, ge=0)
    deterministic: bool = True
    checkpoint_dir: str = "checkpoints"
    resume: str | None = None
    eval_splits: list[Literal["train", "val", "test"]] = Field(default_factory=lambda: ["val", "test"])
    #: validate every N epochs (and after the last); a val/ monitor and early-stopping
    #: patience then count validations. Why: test-time augmentation can make validation cost
    #: several training epochs, and a monitor such as ``lr`` does not need it every epoch.
    val_every: int = Field(default=1, gt=0)
    max_steps_per_epoch: int | None = Field(default=None, gt=0)
    progress: bool = True

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        ok = v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit())
        if not ok:
            raise ValueError("must be one of auto, cpu, cuda, cuda:N, mps")
        return v


class TrackingConfig(_Strict):
    enabled: bool = True
    experiment: str | None = None
    register_model: bool = True
    registered_model: str | None = None
    sample_predictions: int = Field(default=8, ge=0)
    timeout_s: float = Field(default=10.0, gt=0)


class PredictConfig(_Strict):
    """Whole-scene classification settings, stored with the model (``mars-core predict``
    reads them from the model and takes ``--set predict.KEY=VALUE`` and its flags over them).

    ``chunk`` is in scene pixels (default: the contract's tile size) and is resampled to
    ``input_size`` (default: the tile size) before the model sees it. ``filter`` and
    ``summary`` are free-form parameters handed to the task's chunk filter and scene
    summariser (``TaskSpec.chunk_filter`` / ``scene_summariser``), e.g. verdict thresholds.
    Training ignores this section (it is not part of the resume check).
    """

    chunk: int | None = Field(default=None, gt=0)
    input_size: int | None = Field(default=None, gt=0)
    overlap: float = Field(default=0.0, ge=0, lt=1)
    batch_size: int = Field(default=16, gt=0)
    filter: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)


class RunConfig(_Strict):
    task: str
    data: DataConfig
    model: Component
    loss: Component
    metrics: list[Component] = Field(default_factory=list)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """Dotted keys → values, for MLflow params."""
        out: dict[str, Any] = {}

        def walk(prefix: str, value: Any) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                for i, v in enumerate(value):
                    walk(f"{prefix}.{i}", v)
            else:
                out[prefix] = value

        walk("", self.to_dict())
        return out


_COMPONENT_SECTIONS = ("data", "model", "loss")


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise MarsError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise MarsError(f"config file {p} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise MarsError(f"config file {p} must hold a mapping at the top level")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise MarsError(f"--set expects KEY=VALUE, got '{item}'")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise MarsError(f"--set has an empty key in '{item}'")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``layer`` onto ``base``.

    When a layer renames a component (``model.name`` etc.), the parameters given for the
    previous component are dropped: they belong to another factory.
    """
    out = copy.deepcopy(base)
    for key, value in layer.items():
        if (
            key in _COMPONENT_SECTIONS
            and isinstance(value, dict)
            and isinstance(out.get(key), dict)
            and "name" in value
            and value["name"] != out[key].get("name")
        ):
            kept = {"root": out[key]["root"]} if key == "data" and "root" in out[key] else {}
            out[key] = {**kept, **copy.deepcopy(value)}
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    node: Any = value
    for part in reversed(path):
        node = {part: node}
    return node


def format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key{_allowed_keys(err['loc'])}"
        parts.append(f"{loc}: {msg}")
    return "invalid configuration: " + "; ".join(parts)


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model: Any = RunConfig
    for part in loc[:-1]:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return ""
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return ""
    fields = getattr(model, "model_fields", None)
    return f" (allowed: {', '.join(fields)})" if fields else ""


def build_config(
    defaults: dict[str, Any],
    user_file: str | Path | None = None,
    overrides: list[str] | None = None,
    data_root: str | None = None,
) -> RunConfig:
    cfg = copy.deepcopy(defaults)
    if user_file is not None:
        cfg = merge(cfg, read_yaml(user_file))
    for item in overrides or []:
        path, value = parse_override(item)
        cfg = merge(cfg, _nest(path, value))
    if data_root is not None:
        cfg = merge(cfg, {"data": {"root": str(data_root)}})
    try:
        return RunConfig.model_validate(cfg)
    except ValidationError as exc:
        raise MarsError(format_validation_error(exc)) from None


def load_task_config(
    default_yaml: str | Path,
    user_file: str | Path | None = None,
    overrides: list[str] | None = None,
    data_root: str | None = None,
) -> RunConfig:
    return build_config(read_yaml(default_yaml), user_file, overrides, data_root)
