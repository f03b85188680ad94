"""One trial: the base config plus the trial's values, trained by the engine as ``run``
would, logged as a child run of the sweep's MLflow run.

A trial never moves the champion (``tracking.register_model=false``): only the sweep's
best trial is registered, at the end. A failure of any kind (a bad value, a NaN loss, an
exception) becomes an Optuna FAIL and a FAILED child run carrying the error; it never
stops the sweep.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mars_core.errors import MarsError
from mars_core.sweep.space import Scalar, SearchSpace, override

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

ATTR_RUN = "mlflow_run_id"
ATTR_MODEL = "model_uri"
ATTR_ERROR = "error"
ATTR_DEGENERATE = "degenerate"
TAG_STUDY = "mars.sweep.study"
TAG_TRIAL = "mars.sweep.trial"
TAG_PID = "mars.sweep.pid"  # which worker process trained the trial


@dataclass
class Base:
    """What every trial shares: the command's task, config sources and the sweep's run."""

    task: str
    experiment: str
    default_config: Path
    user_config: Path | None
    overrides: list[str]
    data: str | None
    study: str
    parent_run_id: str | None
    checkpoint_base: Path

    def config(self, values: dict[str, Scalar], extra: list[str] | None = None) -> Any:
        from mars_core.config import load_task_config

        return load_task_config(self.default_config, self.user_config,
                                [*self.overrides, *(override(k, v) for k, v in values.items()), *(extra or [])],
                                self.data)


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Scalar]:
    """The trial's values. A grid is suggested as categorical: GridSampler returns the
    value of the grid point the trial was given."""
    values: dict[str, Scalar] = {}
    for key, options in {**space.grid, **space.choices}.items():
        values[key] = trial.suggest_categorical(key, options)
    for key, r in space.ranges.items():
        if r.is_int:
            values[key] = trial.suggest_int(key, int(r.low), int(r.high), log=r.log)
        else:
            values[key] = trial.suggest_float(key, float(r.low), float(r.high), log=r.log)
    return values


class TrialFailed(Exception):
    """The trial ran but produced no usable value (NaN or missing monitored metric)."""


def run_trial(trial: optuna.Trial, space: SearchSpace, base: Base) -> float:
    """Train one trial; return its best monitored value (what Optuna optimises)."""
    from mars_core.engine import train
    from mars_core.tracking.mlflow_tracker import MlflowTracker

    values = suggest(trial, space)
    checkpoints = base.checkpoint_base / f"trial-{trial.number:04d}"
    tracker: MlflowTracker | None = None
    try:
        cfg = base.config(values, ["tracking.enabled=true", "tracking.register_model=false",
                                   f"trainer.checkpoint_dir={checkpoints}", "trainer.resume=null"])
        tracker = MlflowTracker(timeout_s=cfg.tracking.timeout_s, parent_run_id=base.parent_run_id,
                                run_name=f"{base.study}-trial-{trial.number}",
                                tags={TAG_STUDY: base.study, TAG_TRIAL: str(trial.number),
                                      TAG_PID: str(os.getpid())})
        summary = train(cfg, tracker)
        if summary.run_id:
            trial.set_user_attr(ATTR_RUN, summary.run_id)
        if summary.model_uri:
            trial.set_user_attr(ATTR_MODEL, summary.model_uri)
        if summary.extra.get("degenerate"):
            trial.set_user_attr(ATTR_DEGENERATE, str(summary.extra.get("degenerate_reason")))
        value = summary.best_value
        if value is None or not math.isfinite(float(value)):
            raise TrialFailed(f"{summary.monitor} is {value}: no usable value")
        return float(value)
    except Exception as exc:
        message = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:1000]
        trial.set_user_attr(ATTR_ERROR, message)
        _record_failure(trial, base, tracker, message)
        raise


def _record_failure(trial: optuna.Trial, base: Base, tracker: Any, message: str) -> None:
    """Make sure a FAILED child run says why, also when the trial failed before the engine
    opened a run (a bad value) or after it closed one (NaN)."""
    from mars_core.tracking.store import connect, experiment_id

    try:
        run_id = getattr(tracker, "run_id", None)
        store = tracker.store if tracker is not None and tracker.store is not None else connect()
        if run_id is None:
            exp_id = experiment_id(store, base.experiment)
            run = store.client.create_run(exp_id, run_name=f"{base.study}-trial-{trial.number}", tags={
                "mlflow.parentRunId": base.parent_run_id or "", TAG_STUDY: base.study,
                TAG_TRIAL: str(trial.number), "mars.task": base.task})
            run_id = run.info.run_id
            for key, value in trial.params.items():
                store.client.log_param(run_id, key, str(value))
        trial.set_user_attr(ATTR_RUN, run_id)
        store.client.set_tag(run_id, "mars.failure", message[:5000])
        store.client.set_terminated(run_id, "FAILED")
    except (MarsError, Exception) as exc:  # noqa: BLE001 - the trial's own error is what matters
        log.warning("could not record trial %s in MLflow: %s", trial.number, exc)
