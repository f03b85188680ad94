"""Models as weights + configuration + input contract, never as pickled modules.

A pickled ``nn.Module`` breaks as soon as a class moves or a package is renamed. What is
stored instead is what the registries need to rebuild the module: ``weights.pt`` (a
``state_dict``), ``config.yaml`` (the resolved :class:`RunConfig`) and ``contract.json``
(the :class:`InputContract`, with the package versions that produced it).

Two readers exist:

* :class:`MarsPyfuncModel`, an ``mlflow.pyfunc.PythonModel`` for MLflow tooling
  (``mlflow.pyfunc.load_model``, ``mlflow models serve``). It is defined in this importable
  module so that cloudpickle stores it by reference; the pickle holds no model state.
* :func:`load_model`, for the CLI: downloads the three files and rebuilds the model
  directly, so that ``mars-core predict`` never unpickles anything.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import logging
import re
import shutil
import sys
import tempfile
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml
from mlflow.pyfunc import PythonModel
from torch import nn

from mars_core.config import RunConfig
from mars_core.data import InputContract
from mars_core.errors import MarsError
from mars_core.tasks import TIMES_KEY, TaskKind, date_keys, forward, probabilities

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

WEIGHTS = "weights.pt"
CONFIG = "config.yaml"
CONTRACT = "contract.json"
MODEL_ARTIFACT_PATH = "model"
CORE_DISTRIBUTION = "mars-core"


# --------------------------------------------------------------------------- versions


def installed_version(distribution: str) -> str | None:
    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return None
    except ValueError:  # not a valid distribution name, e.g. "(tests)"
        return None


def task_distribution(task: str) -> str | None:
    """The distribution that registered ``task`` in this process, if any."""
    from mars_core.plugins import get_registries

    regs = get_registries()
    if task not in regs.tasks:
        return None
    entry = regs.tasks.entry(task)
    return entry.value.distribution or entry.owner.distribution


def package_versions(cfg: RunConfig) -> dict[str, str]:
    """Versions of mars-core, the task's distribution and torch, as installed now."""
    names = [CORE_DISTRIBUTION, task_distribution(cfg.task) or "", "torch"]
    out: dict[str, str] = {}
    for name in names:
        v = installed_version(name) if name else None
        if v:
            out[name] = v
    return out


def with_versions(contract: InputContract, cfg: RunConfig) -> InputContract:
    """A copy of ``contract`` whose ``package_versions`` are filled from this environment
    (values the data source set itself are kept)."""
    versions = {**package_versions(cfg), **contract.package_versions}
    return contract.model_copy(update={"package_versions": versions}, deep=True)


def _compatible(saved: str, installed: str) -> bool:
    """Same major version (same major.minor for 0.x), the semver promise of compatibility."""
    def parts(v: str) -> list[str]:
        return v.split("+")[0].split(".")

    a, b = parts(saved), parts(installed)
    if not a or not b or a[0] != b[0]:
        return False
    return a[0] != "0" or a[1:2] == b[1:2]


def version_mismatches(contract: InputContract) -> list[str]:
    """Human-readable differences between the versions a model was trained with and the
    installed ones (missing packages included)."""
    out = []
    for dist, saved in sorted(contract.package_versions.items()):
        now = installed_version(dist)
        if now is None:
            out.append(f"{dist} {saved} (not installed)")
        elif not _compatible(saved, now):
            out.append(f"{dist} {saved} (installed {now})")
    return out


def warn(message: str) -> None:
    """One line on stderr, through rich when it is available (it is a core dependency)."""
    try:
        from rich.console import Console

        Console(stderr=True, soft_wrap=True).print(f"[yellow]warning:[/yellow] {message}", markup=True,
                                                   highlight=False)
    except Exception:  # pragma: no cover - rich missing or broken terminal
        print(f"warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- building


def build_model(cfg: RunConfig, contract: InputContract) -> nn.Module:
    """Rebuild the architecture through the model registry, as the engine does:
    ``in_channels`` and (classification) ``num_classes`` come from the contract when the
    factory accepts them and the config leaves them out."""
    from mars_core.engine.components import fill_from_contract
    from mars_core.plugins import get_registries
    from mars_core.registry import call_factory

    models = get_registries().models
    if cfg.model.name not in models:
        dist = contract.package_versions
        hint = ", ".join(d for d in dist if d not in (CORE_DISTRIBUTION, "torch"))
        raise MarsError(
            models.unknown_message(cfg.model.name)
            + (f"; the model was trained with {hint} installed" if hint else "")
        )
    factory = models.get(cfg.model.name)
    params = fill_from_contract(factory, cfg.model.params, contract, cfg.model.name)
    return call_factory("model", cfg.model.name, factory, params)


def rebuild(weights: Path, config: Path, contract_file: Path) -> tuple[nn.Module, RunConfig, InputContract]:
    """Model in eval mode on CPU, from the three stored files."""
    try:
        cfg = RunConfig.model_validate(yaml.safe_load(config.read_text()))
        contract = InputContract.model_validate_json(contract_file.read_text())
    except (OSError, ValueError) as exc:
        raise MarsError(f"stored model files are unreadable: {' '.join(str(exc).split())[:200]}") from None
    model = build_model(cfg, contract)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise MarsError(
            f"stored weights do not fit model '{cfg.model.name}': {str(exc).splitlines()[0]}"
        ) from None
    return model.eval(), cfg, contract


# --------------------------------------------------------------------------- predicting


def predict_probabilities(model: nn.Module, contract: InputContract, model_input: Any) -> np.ndarray:
    """Probabilities for normalised input: ``[B,C,H,W]`` (or ``{'image1', ..., 'imageT'}``,
    optionally with ``times`` [B,T], for change detection) → ``[B,1,H,W]`` maps or ``[B,K]``
    class probabilities."""
    kind = TaskKind(contract.kind)
    keys = date_keys(kind, contract.n_inputs)
    if isinstance(model_input, Mapping):
        missing = [k for k in keys if k not in model_input]
        if missing:
            raise MarsError(f"model input lacks {', '.join(missing)}; expected keys {', '.join(keys)}")
        arrays = [model_input[k] for k in keys]
    elif len(keys) == 1:
        arrays = [model_input]
    else:
        raise MarsError(f"a {kind.value} model takes a dict with keys {', '.join(keys)}")
    tensors = []
    for key, arr in zip(keys, arrays, strict=True):
        t = torch.as_tensor(np.asarray(arr), dtype=torch.float32)
        if t.ndim == 3:
            t = t.unsqueeze(0)
        if t.ndim != 4:
            raise MarsError(f"{key} must be [B,C,H,W]; got shape {tuple(t.shape)}")
        contract.check_band_count(int(t.shape[1]), key)
        tensors.append(t)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    batch: dict[str, torch.Tensor] = {k: t.to(device) for k, t in zip(keys, tensors, strict=True)}
    if isinstance(model_input, Mapping) and model_input.get(TIMES_KEY) is not None:
        times = torch.as_tensor(np.asarray(model_input[TIMES_KEY]), dtype=torch.float32)
        batch[TIMES_KEY] = times.reshape(-1, len(keys)).expand(tensors[0].shape[0], -1).to(device)
    with torch.no_grad():
        logits = forward(kind, model, batch)
    return probabilities(kind, logits).cpu().numpy()


class MarsPyfuncModel(PythonModel):
    """Rebuilds a mars model from its artifacts; holds no state until ``load_context``."""

    def load_context(self, context: Any) -> None:
        arts = context.artifacts
        self.model, self.cfg, self.contract = rebuild(
            Path(arts["weights"]), Path(arts["config"]), Path(arts["contract"])
        )

    def predict(self, context: Any, model_input: np.ndarray, params: dict[str, Any] | None = None) -> Any:
        """``model_input``: a normalised float array [B,C,H,W], or a dict of them for
        change detection. Returns probabilities as a numpy array."""
        return predict_probabilities(self.model, self.contract, model_input)


# --------------------------------------------------------------------------- saving


def signature_for(contract: InputContract) -> ModelSignature:
    """Tensor signature, so that MLflow tooling shows (and checks) shape and band count."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    kind = TaskKind(contract.kind)
    shape = (-1, len(contract.bands), -1, -1)
    f32 = np.dtype("float32")
    keys = date_keys(kind, contract.n_inputs)
    if len(keys) == 1:
        inputs = Schema([TensorSpec(f32, shape)])
    else:
        inputs = Schema([TensorSpec(f32, shape, name=k) for k in keys])
    out_shape = (-1, len(contract.classes)) if kind is TaskKind.CLASSIFICATION else (-1, 1, -1, -1)
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(f32, out_shape)]))


def write_files(model: nn.Module, cfg: RunConfig, contract: InputContract, folder: Path) -> dict[str, str]:
    """Write the three artifacts; returns the pyfunc ``artifacts`` mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, folder / WEIGHTS)
    (folder / CONFIG).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    (folder / CONTRACT).write_text(with_versions(contract, cfg).model_dump_json(indent=2))
    return {"weights": str(folder / WEIGHTS), "config": str(folder / CONFIG),
            "contract": str(folder / CONTRACT)}


def _pip_requirements(cfg: RunConfig) -> list[str]:
    """Pinned from this environment, which also spares MLflow its slow inference step."""
    return [f"{name}=={v}" for name, v in package_versions(cfg).items()]


def _pyfunc_kwargs(model: nn.Module, cfg: RunConfig, contract: InputContract, tmp: Path) -> dict[str, Any]:
    return {
        "python_model": MarsPyfuncModel(),
        "artifacts": write_files(model, cfg, contract, tmp),
        "signature": signature_for(contract),
        "pip_requirements": _pip_requirements(cfg),
    }


@contextlib.contextmanager
def _quiet_saving() -> Iterator[None]:
    """Silence MLflow's cloudpickle and input-example warnings while saving; restore after."""
    from mars_core.tracking.store import quiet_mlflow

    quiet_mlflow()
    loggers = [logging.getLogger(n) for n in ("mlflow.pyfunc", "mlflow.models", "mlflow.utils.environment")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def save_model_dir(model: nn.Module, cfg: RunConfig, contract: InputContract, path: str | Path) -> Path:
    """Save an MLflow pyfunc model into a local directory (which must not exist yet)."""
    import mlflow.pyfunc

    path = Path(path)
    if path.exists():
        raise MarsError(f"model directory {path} already exists")
    with _quiet_saving(), tempfile.TemporaryDirectory() as tmp:
        mlflow.pyfunc.save_model(str(path), **_pyfunc_kwargs(model, cfg, contract, Path(tmp)))
    return path


def log_model(model: nn.Module, cfg: RunConfig, contract: InputContract, run_id: str,
              tracking_uri: str) -> ModelInfo:
    """Log the pyfunc model as ``model`` of run ``run_id`` in the store at ``tracking_uri``.

    The MLflow 3 "logged model" is created here, in the run's experiment: left to
    ``Model.log`` it would land in the active (or default) experiment, and ``runs:/ID/model``
    would not resolve. ``Model.log`` is called directly because it takes an explicit run
    id, where ``mlflow.pyfunc.log_model`` would use (or start) the fluent "active run".
    """
    import mlflow.pyfunc
    from mlflow import MlflowClient
    from mlflow.models import Model

    from mars_core.tracking.store import RetryingClient, using

    client = RetryingClient(MlflowClient(tracking_uri))  # several runs may share a SQLite store
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id, name=MODEL_ARTIFACT_PATH, source_run_id=run_id,
        params=dict(run.data.params), tags={"mars.task": cfg.task},
    )
    with _quiet_saving(), using(tracking_uri), tempfile.TemporaryDirectory() as tmp:
        kwargs = _pyfunc_kwargs(model, cfg, contract, Path(tmp))
        return Model.log(artifact_path=None, name=MODEL_ARTIFACT_PATH, flavor=mlflow.pyfunc, run_id=run_id,
                         model_id=logged.model_id, **kwargs)


# --------------------------------------------------------------------------- loading


@dataclass
class LoadedModel:
    """A rebuilt model (CPU, eval mode) with what it was trained with."""

    model: nn.Module
    cfg: RunConfig
    contract: InputContract
    uri: str
    version_mismatches: list[str] = field(default_factory=list)

    def predict(self, model_input: Any) -> np.ndarray:
        """Same as the pyfunc's ``predict``: normalised arrays in, probabilities out."""
        return predict_probabilities(self.model, self.contract, model_input)


def _find(root: Path, name: str) -> Path:
    for candidate in (root / "artifacts" / name, root / name):
        if candidate.is_file():
            return candidate
    hits = sorted(root.rglob(name))
    if not hits:
        raise MarsError(f"{root} is not a mars model: {name} is missing")
    return hits[0]


def _download(uri: str, dst: Path, timeout_s: float) -> Path:
    from mlflow.exceptions import MlflowException

    from mars_core.tracking.store import connect, one_line, registry_uri

    store = connect(timeout_s, create=False)
    import mlflow.artifacts

    try:
        return Path(mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(dst), tracking_uri=store.uri, registry_uri=registry_uri(store.uri)
        ))
    except MlflowException as exc:
        hint = ""
        if uri.endswith("@champion") and "alias" in str(exc).lower():
            hint = ("; no version has earned the alias (a degenerate model never does): "
                    "'mars-core models' lists the versions, load one as models:/NAME/VERSION")
        raise MarsError(f"cannot load model {uri}: {one_line(exc)}{hint}") from None
    except OSError as exc:
        raise MarsError(f"cannot load model {uri}: {exc}") from None


def load_model(uri: str, timeout_s: float = 10.0, check_versions: bool = True) -> LoadedModel:
    """Load ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, ``runs:/ID/model`` or a local
    directory written by :func:`save_model_dir`, without unpickling anything.

    Version mismatches with the training environment are warned about (one line on
    stderr) and returned in ``LoadedModel.version_mismatches``; the caller decides whether
    they matter.
    """
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]+):", uri)  # 2+ letters: not a drive letter
    tmp: str | None = None
    try:
        if scheme is None or scheme.group(1) == "file":
            local = Path(urllib.parse.urlparse(uri).path if scheme else uri)
            if not local.is_dir():
                raise MarsError(f"model {uri} is neither an MLflow model URI nor a directory")
            root = local
        else:
            tmp = tempfile.mkdtemp(prefix="mars-model-")
            root = _download(uri, Path(tmp), timeout_s)
        model, cfg, contract = rebuild(_find(root, WEIGHTS), _find(root, CONFIG), _find(root, CONTRACT))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    loaded = LoadedModel(model=model, cfg=cfg, contract=contract, uri=uri)
    if check_versions:
        loaded.version_mismatches = version_mismatches(contract)
        if loaded.version_mismatches:
            diff = "; ".join(loaded.version_mismatches)
            warn(f"model {uri} was trained with other package versions: {diff}")
    return loaded
