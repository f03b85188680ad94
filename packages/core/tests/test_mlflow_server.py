"""Tracking against a REAL ``mlflow server`` on 127.0.0.1, and against servers that do not
answer (those run always: they need no server and must fail within seconds)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_tracking_support import (
    check_logged,
    check_model_files,
    check_predictions,
    db_template,
    toy_config,
    tracked_run,
)

from mars_core.errors import MarsError
from mars_core.tracking import list_models, load_model
from mars_core.tracking.mlflow_tracker import MlflowTracker
from mars_core.tracking.store import connect

STARTUP_LIMIT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_health(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer /health within {STARTUP_LIMIT_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def mlflow_server(tmp_path, tmp_path_factory, monkeypatch):
    """A real server in its own process group (it forks workers), always stopped.

    Its database starts as a copy of an already migrated one, which saves the server
    the schema migrations at start-up."""
    shutil.copy(db_template(tmp_path_factory), tmp_path / "srv.db")
    port = free_port()
    log = tmp_path / "server.log"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{tmp_path / 'srv.db'}",
           "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, proc, log)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@pytest.mark.server
def test_log_register_and_load_through_a_real_server(toy, in_tmp, mlflow_server) -> None:
    cfg = toy_config()
    summary = tracked_run(cfg, best_value=0.5, seed=1)
    store = connect(timeout_s=5)
    assert store.uri == mlflow_server
    check_logged(summary, store)
    assert summary.extra["champion_moved"] is True
    assert str(store.client.get_model_version_by_alias("mars-toy", "champion").version) == "1"
    check_model_files(summary.model_uri)
    check_predictions("models:/mars-toy@champion", summary.model)  # load_model and pyfunc
    rows = list_models("toy")
    assert [(r["version"], r["aliases"], r["run_id"]) for r in rows] == [("1", ["champion"], summary.run_id)]
    assert not (in_tmp / "mlflow.db").exists()  # nothing went to the local default store


def _assert_fast_mars_error(fn, timeout_s: float) -> None:
    start = time.monotonic()
    with pytest.raises(MarsError, match="does not answer") as info:
        fn()
    elapsed = time.monotonic() - start
    assert elapsed < timeout_s + 3, f"took {elapsed:.1f} s"
    assert "\n" not in str(info.value)


def test_closed_port_fails_fast_with_mars_error(toy, in_tmp, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")  # nothing listens
    cfg = toy_config("tracking.timeout_s=2")
    from mars_core.plugins import get_registries

    task = get_registries().task("toy")
    _assert_fast_mars_error(lambda: MlflowTracker(timeout_s=2).start(cfg, task), 2)
    _assert_fast_mars_error(lambda: load_model("models:/mars-toy@champion", timeout_s=2), 2)
    _assert_fast_mars_error(lambda: list_models(timeout_s=2), 2)


def test_silent_server_times_out_with_mars_error(toy, in_tmp, monkeypatch) -> None:
    """A port that accepts connections but never answers (a hung server): the probe's
    timeout, not MLflow's minutes of retries, decides."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{silent.getsockname()[1]}")
        from mars_core.plugins import get_registries

        task = get_registries().task("toy")
        _assert_fast_mars_error(lambda: MlflowTracker(timeout_s=2).start(toy_config(), task), 2)
