"""The MLflow implementation of :class:`mars_core.tracking.base.Tracker`.

Everything goes through an ``MlflowClient`` bound to an explicit run id, never through
MLflow's "active run" global: the engine may be embedded in a notebook or a test that has
its own active run, and resuming must reopen exactly the run named in the checkpoint.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import mars_core
from mars_core.errors import MarsError
from mars_core.tracking import model_io, plots, registry_ops
from mars_core.tracking.base import NullTracker, RunSummary, Tracker
from mars_core.tracking.store import DEFAULT_TIMEOUT_S, Store, connect, experiment_id, one_line

if TYPE_CHECKING:
    from mars_core.config import RunConfig
    from mars_core.tasks import TaskSpec

MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value (characters)
MAX_TAG_VALUE = 5000
PARAM_BATCH = 100  # MLflow's limit on params per log_batch
METRIC_BATCH = 1000


def param_value(value: Any, limit: int = MAX_PARAM_VALUE) -> str:
    """String form of a config value that MLflow accepts: long values are cut with a marker
    saying how much was dropped (the full config is in ``config.yaml``)."""
    text = "None" if value is None else (yaml.safe_dump(value, default_flow_style=True).strip()
                                         if isinstance(value, (list, dict)) else str(value))
    if len(text) <= limit:
        return text
    marker = f"...[+{len(text)} chars, see config.yaml]"
    return text[: limit - len(marker)] + marker


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        try:
            f = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[key] = f
    return out


def final_step(history: list[dict[str, float]]) -> int:
    """Step just after the last epoch logged (epochs are 1-based in the engine's history)."""
    epochs = [int(row["epoch"]) for row in history if "epoch" in row]
    return (max(epochs) if epochs else len(history)) + 1


class MlflowTracker:
    """Logs one run per ``mars-core run`` into the experiment of its task.

    ``timeout_s`` bounds how long an unreachable tracking server may delay the run
    (defaults to ``cfg.tracking.timeout_s`` when built with :func:`tracker_for`).
    """

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, uri: str | None = None, *,
                 parent_run_id: str | None = None, run_name: str | None = None,
                 tags: dict[str, str] | None = None) -> None:
        """``parent_run_id`` opens the run as a child (a sweep's trial under its sweep run):
        MLflow nests runs by the ``mlflow.parentRunId`` tag."""
        self.timeout_s = timeout_s
        self.uri = uri
        self.parent_run_id = parent_run_id
        self.run_name = run_name
        self.extra_tags = dict(tags or {})
        self.store: Store | None = None
        self.run_id: str | None = None
        self.cfg: RunConfig | None = None
        self._open = False

    # ------------------------------------------------------------------ protocol

    def start(self, cfg: RunConfig, task: TaskSpec, resume_run_id: str | None = None) -> str | None:
        from mlflow.exceptions import MlflowException

        self.store = connect(self.timeout_s, self.uri)
        self.cfg = cfg
        client = self.store.client
        try:
            exp_id = experiment_id(self.store, cfg.tracking.experiment or task.name)
            if resume_run_id:
                self.run_id = self._reopen(self.store, exp_id, resume_run_id)
            else:
                tags = {**self._tags(cfg, task), **self.extra_tags}
                if self.parent_run_id:
                    tags["mlflow.parentRunId"] = self.parent_run_id
                run = client.create_run(exp_id, tags=tags, run_name=self.run_name)
                self.run_id = run.info.run_id
            self._open = True
            self._log_config(cfg, resumed=bool(resume_run_id))
        except MlflowException as exc:
            raise MarsError(f"MLflow ({self.store.uri}): {one_line(exc)}") from None
        return self.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        client, run_id = self._require()
        now = int(time.time() * 1000)
        items = [Metric(k, v, now, int(step)) for k, v in _finite(metrics).items()]
        for i in range(0, len(items), METRIC_BATCH):
            client.log_batch(run_id, metrics=items[i : i + METRIC_BATCH])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        client, run_id = self._require()
        client.log_artifact(run_id, str(path), artifact_path)

    def finish(self, summary: RunSummary) -> str | None:
        """Final metrics, plots, model, registration; then the run is closed as FINISHED."""
        from mlflow.exceptions import MlflowException

        client, run_id = self._require()
        store = self.store
        assert store is not None
        try:
            self._log_final_metrics(summary)
            self._log_plots(summary)
            info = self._log_model(summary)
            uri = info.model_uri
            if summary.cfg.tracking.register_model:
                result = registry_ops.register(
                    store, summary.cfg, info, run_id,
                    monitor=summary.monitor, mode=summary.mode, best_value=summary.best_value,
                    degenerate=summary.extra.get("degenerate_reason") if summary.extra.get("degenerate") else None,
                )
                summary.extra.update(result)
                uri = f"models:/{result['registered_model']}/{result['model_version']}"
                client.set_tag(run_id, "mars.model_version", uri)
            summary.extra.setdefault("champion_moved", False)
            if summary.extra.get("prediction_health"):
                client.log_dict(run_id, summary.extra["prediction_health"], "prediction_health.json")
            if summary.extra.get("degenerate"):
                client.set_tag(run_id, registry_ops.TAG_DEGENERATE,
                               str(summary.extra.get("degenerate_reason"))[:MAX_TAG_VALUE])
            summary.run_id, summary.model_uri = run_id, uri
            client.set_terminated(run_id, "FINISHED")
            self._open = False
            return uri
        except (MlflowException, OSError) as exc:
            self.fail(f"logging the results failed: {one_line(exc)}")
            raise MarsError(f"MLflow ({store.uri}): {one_line(exc)}") from None
        except MarsError as exc:
            self.fail(str(exc))
            raise

    def fail(self, reason: str) -> None:
        """Close the run as KILLED (interrupt) or FAILED; a no-op when nothing is open."""
        if not self._open or self.store is None or self.run_id is None:
            return
        self._open = False
        status = "KILLED" if "interrupt" in reason.lower() else "FAILED"
        try:
            self.store.client.set_tag(self.run_id, "mars.failure", reason[:MAX_TAG_VALUE])
            self.store.client.set_terminated(self.run_id, status)
        except Exception:  # noqa: BLE001 - reporting the original error matters more
            pass

    # ------------------------------------------------------------------ helpers

    def _require(self) -> tuple[Any, str]:
        if self.store is None or self.run_id is None:
            raise RuntimeError("MlflowTracker.start() was not called")
        return self.store.client, self.run_id

    def _tags(self, cfg: RunConfig, task: TaskSpec) -> dict[str, str]:
        tags = {
            "mars.task": task.name,
            "mars.kind": task.kind.value,
            "mars.distribution": task.distribution,
            "mars.monitor": f"{cfg.trainer.monitor} ({cfg.trainer.mode})",
            "mars.version.mars-core": mars_core.__version__,
        }
        for dist, version in model_io.package_versions(cfg).items():
            tags[f"mars.version.{dist}"] = version
        mlflow_version = model_io.installed_version("mlflow") or model_io.installed_version("mlflow-skinny")
        if mlflow_version:
            tags["mars.version.mlflow"] = mlflow_version
        return tags

    @staticmethod
    def _reopen(store: Store, exp_id: str, run_id: str) -> str:
        from mlflow.exceptions import MlflowException

        client = store.client
        try:
            run = client.get_run(run_id)
        except MlflowException:
            raise MarsError(f"cannot resume MLflow run {run_id}: it does not exist on {store.uri}") from None
        if run.info.experiment_id != exp_id:
            raise MarsError(f"cannot resume MLflow run {run_id}: it belongs to another experiment")
        client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, "mars.resumed", "true")
        return run_id

    def _log_config(self, cfg: RunConfig, resumed: bool) -> None:
        """Params from ``cfg.flat()``; on resume only new keys (MLflow forbids changing a
        param) and the names of changed ones as a tag; the YAML as an artifact."""
        from mlflow.entities import Param

        client, run_id = self._require()
        values = {k: param_value(v) for k, v in cfg.flat().items()}
        existing = client.get_run(run_id).data.params if resumed else {}
        changed = sorted(k for k, v in values.items() if k in existing and existing[k] != v)
        items = [Param(k, v) for k, v in values.items() if k not in existing]
        for i in range(0, len(items), PARAM_BATCH):
            client.log_batch(run_id, params=items[i : i + PARAM_BATCH])
        if changed:
            client.set_tag(run_id, "mars.resume.changed_params", ", ".join(changed)[:MAX_TAG_VALUE])
        text = yaml.safe_dump(cfg.to_dict(), sort_keys=False)
        client.log_text(run_id, text, "config.resumed.yaml" if resumed else "config.yaml")

    def _log_final_metrics(self, summary: RunSummary) -> None:
        client, run_id = self._require()
        flat = {f"{split}/{name}": v for split, values in summary.metrics.items()
                for name, v in values.items()}
        if summary.best_value is not None:
            flat[f"best/{summary.monitor}"] = summary.best_value
        self.log_metrics(flat, step=final_step(summary.history))
        client.set_tag(run_id, "mars.best_value", repr(summary.best_value))
        client.set_tag(run_id, "mars.best_epoch", repr(summary.best_epoch))

    def _log_plots(self, summary: RunSummary) -> None:
        client, run_id = self._require()
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "plots"
            plots.training_curves(summary.history, folder / "training_curves.png")
            limit = summary.cfg.tracking.sample_predictions
            if summary.samples and limit > 0:
                plots.prediction_grid(
                    summary.samples, summary.task.kind, folder / "predictions.png", preview=summary.preview,
                    limit=limit, threshold=summary.contract.threshold, classes=summary.contract.classes,
                )
            client.log_artifacts(run_id, str(folder), "plots")

    def _log_model(self, summary: RunSummary) -> Any:
        _, run_id = self._require()
        assert self.store is not None
        return model_io.log_model(summary.model, summary.cfg, summary.contract, run_id, self.store.uri)


def tracker_for(cfg: RunConfig, rank: int = 0) -> Tracker:
    """The tracker the engine should use: MLflow on rank 0 when tracking is enabled."""
    if rank != 0 or not cfg.tracking.enabled:
        return NullTracker()
    return MlflowTracker(timeout_s=cfg.tracking.timeout_s)
