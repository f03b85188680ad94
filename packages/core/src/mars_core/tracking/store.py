"""Where runs and models are stored, and how to reach it without hanging.

MLflow itself retries an unreachable HTTP server for minutes with exponential back-off;
a user who mistyped ``MLFLOW_TRACKING_URI`` should instead learn it within seconds. So
every entry point of :mod:`mars_core.tracking` goes through :func:`connect`, which sets
MLflow's environment knobs low (unless the user set them), probes HTTP servers with one
short request, and only then hands out an ``MlflowClient`` bound to that store.

``mlflow`` is imported lazily: importing it costs about a second, which the CLI should not
pay for ``mars-core plugins``, and its environment variables must be set before it reads
them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mars_core.errors import MarsError

if TYPE_CHECKING:
    from mlflow import MlflowClient

ENV_URI = "MLFLOW_TRACKING_URI"
ENV_REGISTRY = "MLFLOW_REGISTRY_URI"
DEFAULT_DB = "mlflow.db"
DEFAULT_ARTIFACTS = "mlartifacts"
DEFAULT_TIMEOUT_S = 10.0

# Noisy loggers: MLflow's INFO lines and alembic's schema migrations on a fresh SQLite file.
_QUIET_LOGGERS = ("mlflow", "alembic", "alembic.runtime.migration", "urllib3.connectionpool")


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else an embedded SQLite file in the working directory.

    The SQLite path is made absolute so that a later ``chdir`` (tests, notebooks) does not
    silently start a second, empty store.
    """
    uri = os.environ.get(ENV_URI, "").strip()
    if uri:
        return uri
    return f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve()}"


def is_default_store(uri: str) -> bool:
    return uri == f"sqlite:///{(Path.cwd() / DEFAULT_DB).resolve()}"


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def quiet_mlflow(timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Turn MLflow's retries, progress bars, async logging and chatter down.

    Values the user already exported win, except for the request timeout, which is
    capped at ``timeout_s`` so that one unanswered request cannot outlast the probe.
    """
    defaults = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    current = os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT")
    cap = max(1, int(round(timeout_s)))
    try:
        keep = current is not None and 0 < int(current) <= cap
    except ValueError:
        keep = False
    if not keep:
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(cap)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def probe(uri: str, timeout_s: float) -> None:
    """Fail fast with :class:`MarsError` when an HTTP tracking server does not answer.

    Any HTTP response below 500 counts as "answering" (a proxy may not route ``/health``,
    an auth layer may answer 401): the point is to catch a dead host or port, not to
    validate credentials, which MLflow reports itself.
    """
    if not is_http(uri):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - http(s) only
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MarsError(
            f"MLflow tracking server {uri} does not answer ({reason}); "
            f"check {ENV_URI} or unset it to use ./{DEFAULT_DB}"
        ) from None
    if status >= 500:
        raise MarsError(f"MLflow tracking server {uri} answered HTTP {status} on /health")


@dataclass
class Store:
    """A verified connection: the URI and a client bound to it."""

    uri: str
    client: MlflowClient


def registry_uri(uri: str) -> str:
    """The model registry lives with the tracking store unless the user split them."""
    return os.environ.get(ENV_REGISTRY, "").strip() or uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def connect(timeout_s: float = DEFAULT_TIMEOUT_S, uri: str | None = None, *, create: bool = True) -> Store:
    """Resolve, probe and open the tracking store.

    With ``create=False`` a missing SQLite file is an error instead of a new, empty store:
    reading commands (``predict --model models:/...``) must not leave an ``mlflow.db``
    behind in whatever directory they were started from.

    MLflow's global URI is left alone: ``mlflow.set_tracking_uri`` also exports
    ``MLFLOW_TRACKING_URI``, which would pin every later call in this process (a notebook
    that changes directory, the next test) to this store. See :func:`using`.
    """
    uri = uri or tracking_uri()
    db = sqlite_path(uri)
    if not create and db is not None and not db.is_file():
        raise MarsError(f"no MLflow store at {db}; run a task here first or set {ENV_URI}")
    quiet_mlflow(timeout_s)
    probe(uri, timeout_s)
    from mlflow import MlflowClient

    return Store(uri=uri, client=MlflowClient(tracking_uri=uri, registry_uri=registry_uri(uri)))


@contextlib.contextmanager
def using(uri: str) -> Iterator[None]:
    """Make ``uri`` MLflow's global tracking URI for APIs that only read the global
    (``Model.log``), then restore both the global and the environment variable."""
    import mlflow

    saved = os.environ.get(ENV_URI)
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved)  # None unsets both the global and the variable
        if saved is None:
            os.environ.pop(ENV_URI, None)
        else:
            os.environ[ENV_URI] = saved


def one_line(exc: BaseException) -> str:
    """MLflow messages can span many lines (server tracebacks); the CLI wants one."""
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


def experiment_id(store: Store, name: str) -> str:
    """Get or create the experiment; with the default SQLite store, artifacts go to
    ``./mlartifacts/<name>`` next to ``mlflow.db`` rather than MLflow's ``./mlruns``."""
    from mlflow.exceptions import MlflowException

    try:
        exp = store.client.get_experiment_by_name(name)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                raise MarsError(
                    f"MLflow experiment '{name}' is deleted; restore it or set tracking.experiment"
                )
            return str(exp.experiment_id)
        location = None
        if is_default_store(store.uri):
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
            location = (Path.cwd() / DEFAULT_ARTIFACTS / safe).resolve().as_uri()
        return str(store.client.create_experiment(name, artifact_location=location))
    except MlflowException as exc:
        raise MarsError(f"MLflow experiment '{name}': {one_line(exc)}") from None


def is_not_found(exc: Any) -> bool:
    """MLflow reports a missing alias/version as RESOURCE_DOES_NOT_EXIST or, for
    aliases on some stores, INVALID_PARAMETER_VALUE."""
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")
