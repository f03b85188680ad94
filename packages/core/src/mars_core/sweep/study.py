"""The Optuna study behind a sweep: storage, sampler, the sweep's MLflow run, and the
loop each worker runs.

Workers coordinate only through the study's storage (an RDB): trial numbers are handed
out by the database, GridSampler maps trial ``i < grid size`` to grid point ``i``, and a
worker stops when no grid point is left unstarted. Optuna's own fallback (re-evaluating
a started point when none is free) is refused here: a trial whose grid point another,
earlier trial already covers is pruned without training.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mars_core.errors import MarsError
from mars_core.sweep.space import SearchSpace
from mars_core.sweep.trial import TAG_STUDY, Base, run_trial

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)

DEFAULT_STORAGE_FILE = "optuna.db"
DEFAULT_N_TRIALS = 20  # without a grid; a grid defaults to its size
ATTR_PARENT = "mlflow_parent_run_id"
ATTR_SPACE = "search_space"
SQLITE_TIMEOUT_S = 60  # SQLite busy timeout for the Optuna storage shared by local workers


def default_storage() -> str:
    """``sqlite:///<cwd>/optuna.db``: beside the default ``mlflow.db``, absolute so that
    worker processes and a later ``chdir`` reach the same file."""
    return f"sqlite:///{(Path.cwd() / DEFAULT_STORAGE_FILE).resolve()}"


def open_storage(url: str) -> optuna.storages.RDBStorage:
    import optuna

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    except Exception as exc:  # noqa: BLE001 - bad URL, missing driver, unreachable server
        raise MarsError(f"Optuna storage {url}: {' '.join(str(exc).split())[:300]}") from None


def load_study(name: str, storage: Any, space: SearchSpace, direction: str, seed: int | None) -> optuna.Study:
    """Create the study or load it to resume; a study of the same name with another
    search space or direction is refused rather than silently mixed."""
    import optuna

    # Failed trials are reported in the sweep's table and child runs; Optuna would also
    # print each one's traceback.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = (optuna.samplers.GridSampler(space.grid, seed=seed) if space.is_grid
               else optuna.samplers.TPESampler(seed=seed))
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler, direction=direction,
                                load_if_exists=True)
    described = json.loads(json.dumps(space.describe()))
    stored = study.user_attrs.get(ATTR_SPACE)
    if stored is None:
        study.set_user_attr(ATTR_SPACE, described)
    elif stored != described:
        raise MarsError(f"study '{name}' exists with another search space; use a new --study name")
    if study.direction.name.lower() != direction:
        raise MarsError(f"study '{name}' exists with direction {study.direction.name.lower()}, not {direction}")
    return study


def parent_run(study: optuna.Study, experiment: str, task: str) -> str:
    """The sweep's MLflow run: reopened on a rerun (its id is kept in the study), created
    otherwise. Trials are its children."""
    from mars_core.tracking.store import connect, experiment_id

    store = connect()
    exp_id = experiment_id(store, experiment)
    run_id = study.user_attrs.get(ATTR_PARENT)
    if run_id:
        try:
            store.client.update_run(run_id, status="RUNNING")
            return str(run_id)
        except Exception:  # noqa: BLE001 - deleted or on another store: start a new one
            log.warning("sweep run %s not found; starting a new one", run_id)
    run = store.client.create_run(exp_id, run_name=f"sweep-{study.study_name}",
                                  tags={TAG_STUDY: study.study_name, "mars.sweep": "true", "mars.task": task})
    study.set_user_attr(ATTR_PARENT, run.info.run_id)
    return str(run.info.run_id)


def _grid_ids(study: optuna.Study) -> dict[int, Any]:
    """Trial number -> grid point id (GridSampler writes it before the objective runs)."""
    return {t.number: t.system_attrs.get("grid_id") for t in study.get_trials(deepcopy=False)
            if "grid_id" in t.system_attrs}


def _free_grid_points(study: optuna.Study, space: SearchSpace) -> int:
    """Grid points that no trial has taken yet (running, finished, failed)."""
    return space.grid_size() - len(set(_grid_ids(study).values()))


def _covered_earlier(trial: optuna.Trial, study: optuna.Study) -> bool:
    """Whether an earlier trial holds this trial's grid point: Optuna re-evaluates a taken
    point when a worker asks after all points were handed out; the earlier trial wins."""
    ids = _grid_ids(study)
    mine = ids.get(trial.number)
    return mine is not None and any(n < trial.number and g == mine for n, g in ids.items())


def work(study: optuna.Study, space: SearchSpace, base: Base, n_trials: int | None) -> int:
    """One worker: run trials until the grid (or ``n_trials`` in all) is used up.
    Returns how many trials this worker trained."""
    import optuna

    from mars_core.sweep.trial import suggest

    trained = 0
    budget = n_trials if n_trials is not None else (space.grid_size() or DEFAULT_N_TRIALS)

    def objective(trial: optuna.Trial) -> float:
        nonlocal trained
        if trial.number >= budget and not space.is_grid:
            study.stop()
            raise optuna.TrialPruned("over the trial budget")
        if space.is_grid:
            suggest(trial, space)
            if _covered_earlier(trial, study):
                raise optuna.TrialPruned("grid point already taken by an earlier trial")
        trained += 1
        return run_trial(trial, space, base)

    while True:
        started = len([t for t in study.get_trials(deepcopy=False)
                       if t.state != optuna.trial.TrialState.PRUNED])
        if started >= budget:
            break
        if space.is_grid and _free_grid_points(study, space) <= 0:
            break
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
    return trained
