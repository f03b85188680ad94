"""Several processes on one fresh default SQLite store (SYNTHETIC toy task).

A fresh ``mlflow.db`` used by processes started together used to fail in MLflow's schema
creation (``table ... already exists``); the champion alias must end on the best version
however the runs interleave.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_tracking_support import db_template, seed_store

from mars_core.tracking import registry_ops
from mars_core.tracking.store import connect, store_lock

CLI = Path(__file__).parent / "engine_helpers" / "cli_toy.py"
N_RUNS = 3
TINY = ["--set", "tracking.enabled=true", "--set", "trainer.epochs=1", "--set", "data.n_train=8",
        "--set", "data.n_val=4", "--set", "data.n_test=0", "--set", "tracking.sample_predictions=0"]


def subprocess_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MARS_CORE_DISABLE_PLUGIN_AUTOLOAD": "1",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


@pytest.mark.slow
def test_runs_started_together_on_a_fresh_store_all_succeed(tmp_path, monkeypatch):
    assert not (tmp_path / "mlflow.db").exists()
    procs = [subprocess.Popen([sys.executable, str(CLI), "run", "toy", *TINY, "--set", f"trainer.seed={i}"],
                              cwd=tmp_path, env=subprocess_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(N_RUNS)]
    outputs = [p.communicate(timeout=240)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]

    monkeypatch.chdir(tmp_path)  # connect() resolves the default store from the working directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = connect(create=False)
    exp = store.client.get_experiment_by_name("toy")
    runs = store.client.search_runs([exp.experiment_id])
    assert len(runs) == N_RUNS and all(r.info.status == "FINISHED" for r in runs)
    versions = store.client.search_model_versions("name = 'mars-toy'")
    assert len(versions) == N_RUNS
    values = {str(v.version): float(v.tags[registry_ops.TAG_VALUE]) for v in versions}
    champion = store.client.get_model_version_by_alias("mars-toy", registry_ops.CHAMPION)
    assert values[str(champion.version)] == max(values.values())


def test_champion_compare_and_set_lets_only_the_better_of_two_win(toy, in_tmp, tmp_path_factory, monkeypatch):
    """Two contenders read the same old champion; without the lock both would see "better"
    and the worse one, moving second, would take the alias from the better one."""
    seed_store(db_template(tmp_path_factory), in_tmp)
    store = connect()
    name = "mars-toy"
    store.client.create_registered_model(name)
    tags = {registry_ops.TAG_MONITOR: "val/miou", registry_ops.TAG_MODE: "max"}
    for value in (0.5, 0.9, 0.7):  # v1 the old champion, v2 the better contender, v3 the worse
        store.client.create_model_version(name, source="file:///nowhere", tags={
            **tags, registry_ops.TAG_VALUE: repr(value)})
    store.client.set_registered_model_alias(name, registry_ops.CHAMPION, "1")

    # The better contender reads first, then the worse one reads before the better one has
    # moved the alias: both would decide against v1 if reads were not serialised.
    read = registry_ops.current_champion
    better_has_read, worse_has_read = threading.Event(), threading.Event()

    def slow_read(st, nm):
        champion = read(st, nm)
        if threading.current_thread().name == "better":
            better_has_read.set()
            worse_has_read.wait(timeout=1.0)  # times out under the lock: the worse one waits
        else:
            worse_has_read.set()
        return champion

    monkeypatch.setattr(registry_ops, "current_champion", slow_read)
    results: dict[str, tuple] = {}

    def claim(version: str, value: float) -> None:
        results[threading.current_thread().name] = registry_ops.claim_champion(
            store, name, version, "val/miou", "max", value)

    better = threading.Thread(target=claim, args=("2", 0.9), name="better")
    worse = threading.Thread(target=claim, args=("3", 0.7), name="worse")
    better.start()
    assert better_has_read.wait(timeout=30)
    worse.start()
    better.join(timeout=60)
    worse.join(timeout=60)

    assert results["better"][0] is True
    assert results["worse"][0] is False and str(results["worse"][2].version) == "2"
    assert str(store.client.get_model_version_by_alias(name, registry_ops.CHAMPION).version) == "2"


def test_store_lock_excludes_another_process(in_tmp):
    """The lock is inter-process: a child cannot take it while this process holds it."""
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"
    probe = ("import sys; from filelock import FileLock, Timeout\n"
             "try:\n    FileLock(sys.argv[1]).acquire(timeout=0.2); print('free')\n"
             "except Timeout:\n    print('held')")
    lock_file = str(in_tmp / "mlflow.db.lock")
    with store_lock(uri):
        held = subprocess.run([sys.executable, "-c", probe, lock_file], capture_output=True, text=True)
    free = subprocess.run([sys.executable, "-c", probe, lock_file], capture_output=True, text=True)
    assert (held.stdout.strip(), free.stdout.strip()) == ("held", "free")


def test_locked_database_errors_are_retried_and_others_are_not(tmp_path):
    """A real SQLite lock: another connection holds an exclusive transaction; the write
    succeeds once it is released, within the bounded retries."""
    import sqlite3

    from mars_core.tracking.store import is_locked_error, retry_locked

    db = tmp_path / "x.db"
    sqlite3.connect(db).execute("CREATE TABLE t (v INTEGER)").connection.commit()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    attempts: list[int] = []

    def write() -> None:
        attempts.append(1)
        if len(attempts) == 3:
            holder.execute("COMMIT")  # the other process finishes while we back off
        con = sqlite3.connect(db, timeout=0)
        try:
            con.execute("INSERT INTO t VALUES (1)")
            con.commit()
        finally:
            con.close()

    retry_locked(write, sleep=lambda s: None)
    assert len(attempts) == 3  # refused twice, then written
    assert sqlite3.connect(db).execute("SELECT count(*) FROM t").fetchone() == (1,)

    holder.execute("BEGIN EXCLUSIVE")
    tries: list[int] = []

    def blocked_write() -> None:
        tries.append(1)
        con = sqlite3.connect(db, timeout=0)
        try:
            con.execute("INSERT INTO t VALUES (2)")
        finally:
            con.close()

    with pytest.raises(sqlite3.OperationalError) as info:  # bounded: gives up after the retries
        retry_locked(blocked_write, retries=2, sleep=lambda s: None)
    assert is_locked_error(info.value) and len(tries) == 3
    holder.execute("ROLLBACK")

    calls: list[int] = []
    with pytest.raises(ValueError):
        retry_locked(lambda: calls.append(1) or (_ for _ in ()).throw(ValueError("not a lock")))
    assert calls == [1]
