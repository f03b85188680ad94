"""Model registry: one registered model per task, and the ``champion`` alias.

Every run with ``tracking.register_model`` creates a version; only a version whose
monitored value beats the current champion's takes the alias. The monitored metric's
name, value and direction are stored as version tags, so the comparison needs no access
to the runs (which may have been deleted or live on another server) and so
``mars-core models`` can show them.

Moving the alias is a compare-and-set (:func:`claim_champion`): read the current
champion's tags, compare, move, all under the store's inter-process lock, so of two runs
finishing together only the better one wins and the other cannot move the alias back.
The lock is a file beside a SQLite store, so it covers every process on machines that
share that file. An HTTP tracking server has no such lock (MLflow's REST API has no
conditional alias update): each decision still reads the champion just before moving it,
so the window is one read and one write; if two runs land in it the later write wins,
and ``mars-core models`` shows every version's monitored value for a manual fix.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mars_core.errors import MarsError
from mars_core.tracking.store import (
    Store,
    connect,
    is_not_found,
    one_line,
    sqlite_path,
    store_lock,
    tracking_uri,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

    from mars_core.config import RunConfig

CHAMPION = "champion"
PREFIX = "mars-"
TAG_TASK = "mars.task"
TAG_MONITOR = "monitor"
TAG_VALUE = "monitor_value"
TAG_MODE = "mode"
TAG_DEGENERATE = "mars.degenerate"
TAG_UNRANKED = "mars.unranked"


def registered_name(cfg: RunConfig) -> str:
    return cfg.tracking.registered_model or f"{PREFIX}{cfg.task}"


def _value(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def better(new: float | None, old: float | None, mode: str) -> bool:
    """Strictly better; ties and unknown values never move the champion."""
    if new is None or old is None:
        return False
    return new > old if mode == "max" else new < old


def current_champion(store: Store, name: str) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return store.client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise


def decide(champion: ModelVersion | None, monitor: str, mode: str, value: float | None) -> tuple[bool, str]:
    """Whether a new version with ``value`` should take the alias, and why (for the log).

    A champion measured on another metric or direction cannot be compared, so it stays:
    changing ``trainer.monitor`` must not silently crown a worse model.
    """
    if champion is None:
        return True, "no champion yet"
    tags = champion.tags or {}
    if tags.get(TAG_MONITOR) != monitor or tags.get(TAG_MODE) != mode:
        return False, (f"champion v{champion.version} was ranked by {tags.get(TAG_MONITOR)!s} "
                       f"({tags.get(TAG_MODE)!s}), not {monitor} ({mode})")
    old = _value(tags.get(TAG_VALUE))
    if better(value, old, mode):
        return True, f"{monitor} {value:.6g} beats champion v{champion.version} ({old:.6g})"
    return False, f"{monitor} {value} does not beat champion v{champion.version} ({old})"


def claim_champion(store: Store, name: str, version: str, monitor: str, mode: str,
                   value: float | None) -> tuple[bool, str, ModelVersion | None]:
    """Give ``version`` the alias if it beats the champion *as it is now*: compare-and-set.

    The read, the comparison and the move happen under :func:`store_lock`, so a concurrent
    claim sees the outcome of this one. Returns (moved, reason, champion before the claim).
    """
    with store_lock(store.uri):
        champion = current_champion(store, name)
        moved, reason = decide(champion, monitor, mode, value)
        if moved:
            store.client.set_registered_model_alias(name, CHAMPION, version)
    return moved, reason, champion


def register(store: Store, cfg: RunConfig, model_info: Any, run_id: str, *, monitor: str, mode: str,
             best_value: float | None, degenerate: str | None = None,
             unranked: str | None = None) -> dict[str, Any]:
    """Create a version of ``mars-<task>`` for a logged model; move ``champion`` if earned.

    A ``degenerate`` model (the reason, from :mod:`mars_core.engine.health`) is registered,
    so that it can be inspected, and tagged, but never takes the alias: its monitored value
    may look fine (a constant "change" map has recall 1.0) while it says nothing. An
    ``unranked`` model (the reason: e.g. an ensemble composed after training, never measured
    on ``monitor``) never takes it either: as the only champion it would hold the alias
    against every later trained run, whose value cannot beat a missing one.
    Returns what happened, for ``RunSummary.extra`` and the CLI's closing table.
    """
    from mlflow.exceptions import MlflowException

    name = registered_name(cfg)
    value = _value(best_value)
    tags = {TAG_TASK: cfg.task, TAG_MONITOR: monitor, TAG_MODE: mode}
    if value is not None:
        tags[TAG_VALUE] = repr(value)
    if degenerate:
        tags[TAG_DEGENERATE] = degenerate[:5000]
    if unranked:
        tags[TAG_UNRANKED] = unranked[:5000]
    client = store.client
    try:
        try:
            client.create_registered_model(name, tags={TAG_TASK: cfg.task},
                                           description=f"mars-core models for task '{cfg.task}'")
        except MlflowException as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            name, source=model_info.model_uri, run_id=run_id, tags=tags,
            model_id=getattr(model_info, "model_id", None),
        )
        if degenerate or unranked:  # nothing moves, so no compare-and-set (and no lock) is needed
            champion = current_champion(store, name)
            moved, reason = False, (f"degenerate model, not a champion ({degenerate})" if degenerate
                                    else f"not ranked, not a champion ({unranked})")
        else:
            moved, reason, champion = claim_champion(store, name, str(version.version), monitor, mode, value)
    except MlflowException as exc:
        raise MarsError(f"registering model '{name}' failed: {one_line(exc)}") from None
    return {
        "registered_model": name,
        "model_version": str(version.version),
        "champion_moved": moved,
        "champion_reason": reason,
        "previous_champion": None if champion is None else str(champion.version),
        "champion_version": str(version.version) if moved else (str(champion.version) if champion else None),
    }


def _iso(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _key_metrics(store: Store, run_id: str | None) -> dict[str, float]:
    """Final split metrics of the run (``val/...``, ``test/...``); empty if the run is gone."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return {}
    try:
        metrics = store.client.get_run(run_id).data.metrics
    except MlflowException:
        return {}
    return {k: v for k, v in sorted(metrics.items()) if k.startswith(("val/", "test/"))}


def _task_of(rm: Any) -> str | None:
    tagged = (rm.tags or {}).get(TAG_TASK)
    if tagged:
        return str(tagged)
    return rm.name[len(PREFIX):] if rm.name.startswith(PREFIX) else None


def _all_registered(store: Store) -> list[Any]:
    out, token = [], None
    while True:
        page = store.client.search_registered_models(max_results=100, page_token=token)
        out.extend(page)
        token = page.token
        if not token:
            return out


def list_models(task: str | None = None, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Every version of every mars model (``mars-*`` or tagged with a task), newest first.

    Each row: ``name, task, version, aliases, run_id, monitor, monitor_value, mode,
    created, status, uri, metrics``.
    """
    from mlflow.exceptions import MlflowException

    db = sqlite_path(tracking_uri())
    if db is not None and not db.is_file():
        return []  # no store yet, so no models; do not create one just to say so
    store = connect(timeout_s)
    try:
        rows: list[dict[str, Any]] = []
        for rm in _all_registered(store):
            rm_task = _task_of(rm)
            if rm_task is None or (task is not None and rm_task != task):
                continue
            aliases: dict[str, list[str]] = {}
            for alias, v in (rm.aliases or {}).items():
                aliases.setdefault(str(v), []).append(alias)
            versions = store.client.search_model_versions(f"name = '{rm.name}'")
            for mv in sorted(versions, key=lambda m: int(m.version), reverse=True):
                tags = mv.tags or {}
                rows.append({
                    "name": rm.name,
                    "task": tags.get(TAG_TASK, rm_task),
                    "version": str(mv.version),
                    "aliases": sorted(aliases.get(str(mv.version), [])),
                    "run_id": mv.run_id,
                    "monitor": tags.get(TAG_MONITOR),
                    "monitor_value": _value(tags.get(TAG_VALUE)),
                    "mode": tags.get(TAG_MODE),
                    "created": _iso(mv.creation_timestamp),
                    "status": str(mv.status),
                    "uri": f"models:/{rm.name}/{mv.version}",
                    "metrics": _key_metrics(store, mv.run_id),
                })
    except MlflowException as exc:
        raise MarsError(f"listing models failed: {one_line(exc)}") from None
    return rows
