"""Where runs and models are stored, and how to reach it without hanging.

MLflow itself retries an unreachable HTTP server for minutes with exponential back-off;
a user who mistyped ``MLFLOW_TRACKING_URI`` should instead learn it within seconds. So
every entry point of :mod:`mars_core.tracking` goes through :func:`connect`, which sets
MLflow's environment knobs low (unless the user set them), probes HTTP servers with one
short request, and only then hands out an ``MlflowClient`` bound to that store.

``mlflow`` is imported lazily: importing it costs about a second, which the CLI should not
pay for ``mars-core plugins``, and its environment variables must be set before it reads
them.

Several processes may share the default SQLite store (parallel ``mars-core run``, sweep
workers). MLflow creates and migrates the schema on first use without coordinating
processes, so two first users of a fresh ``mlflow.db`` corrupt each other's migration
(``table trace_info already exists``). Hence :func:`store_lock`, an inter-process lock
file beside the database, held while the schema is created and while the champion alias
moves; and :class:`RetryingClient`, which retries calls that SQLite refused with
"database is locked" instead of losing the run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT_S = 300.0  # a schema migration on a busy 2-core machine takes seconds, not minutes
LOCKED_RETRIES = 8  # attempts after the first; back-off 0.1 s doubling to 5 s, ~20 s in all

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
    """A verified connection: the URI and a client bound to it (a :class:`RetryingClient`,
    typed as the ``MlflowClient`` it forwards to)."""

    uri: str
    client: MlflowClient


def lock_path(uri: str) -> Path | None:
    """The lock file of a SQLite store (``mlflow.db.lock`` beside ``mlflow.db``); None for
    server-backed stores, which serialise writes themselves."""
    db = sqlite_path(uri)
    return None if db is None else db.with_name(db.name + LOCK_SUFFIX)


# One FileLock object per lock file and process: ``flock`` locks belong to an open file, so
# two objects on one path in one process would block each other; one object is re-entrant.
_LOCKS: dict[str, Any] = {}


@contextlib.contextmanager
def store_lock(uri: str, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the store's inter-process lock (a no-op for non-SQLite stores).

    Re-entrant within a process. A lock not obtained within ``timeout_s`` is a
    :class:`MarsError` naming the lock file: a process stuck while holding it is the only
    way to get there, and the user can see which.
    """
    path = lock_path(uri)
    if path is None:
        yield
        return
    from filelock import FileLock, Timeout

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _LOCKS.setdefault(str(path), FileLock(str(path)))
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise MarsError(f"MLflow store {uri} stayed locked for {timeout_s:.0f} s ({path}); "
                        "is another mars-core process stuck?") from None
    try:
        yield
    finally:
        lock.release()


def is_locked_error(exc: BaseException) -> bool:
    """Whether SQLite refused a write because another process held the database.

    MLflow wraps SQLAlchemy's ``OperationalError`` in an ``MlflowException``; the
    original is somewhere in the cause chain, or at least in the message.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current).lower()
        if "database is locked" in text or "database table is locked" in text:
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_locked(fn: Callable[..., Any], *args: Any, retries: int = LOCKED_RETRIES,
                 sleep: Callable[[float], None] = time.sleep, **kwargs: Any) -> Any:
    """Call ``fn``; on "database is locked" wait (exponential back-off with jitter) and
    call again, at most ``retries`` more times. A refused SQLite write is rolled back, so
    repeating it cannot apply it twice."""
    delay = 0.1
    for attempt in range(retries + 1):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if attempt >= retries or not is_locked_error(exc):
                raise
            sleep(delay * (1.0 + random.random()))  # noqa: S311 - jitter, not cryptography
            delay = min(delay * 2.0, 5.0)
    raise AssertionError("unreachable")  # pragma: no cover


class RetryingClient:
    """An ``MlflowClient`` whose methods retry on "database is locked" (see
    :func:`retry_locked`); every other attribute is the client's own."""

    def __init__(self, client: MlflowClient) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return retry_locked(attr, *args, **kwargs)

        return call


def initialise(client: MlflowClient, uri: str) -> None:
    """Create or migrate a SQLite store's schema under :func:`store_lock`.

    Building the client builds the tracking store; touching the registry builds the
    registry store: that is when MLflow creates tables and runs migrations, so the caller
    holds the lock around both. MLflow caches the stores per URI, so later calls in this
    process do not repeat the work.
    """
    if sqlite_path(uri) is None:
        return
    with store_lock(uri):
        retry_locked(client.search_experiments, max_results=1)
        retry_locked(client.search_registered_models, max_results=1)


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

    with store_lock(uri):  # MlflowClient() itself creates and migrates a SQLite schema
        client = MlflowClient(tracking_uri=uri, registry_uri=registry_uri(uri))
        initialise(client, uri)
    return Store(uri=uri, client=RetryingClient(client))  # type: ignore[arg-type]


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

    # Under the store lock: two first runs of a task would both find no experiment and
    # both create it, and the second would fail on the unique name.
    try:
        with store_lock(store.uri):
            return _get_or_create_experiment(store, name)
    except MlflowException as exc:
        raise MarsError(f"MLflow experiment '{name}': {one_line(exc)}") from None


def _get_or_create_experiment(store: Store, name: str) -> str:
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


def is_not_found(exc: Any) -> bool:
    """MLflow reports a missing alias/version as RESOURCE_DOES_NOT_EXIST or, for
    aliases on some stores, INVALID_PARAMETER_VALUE."""
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")
