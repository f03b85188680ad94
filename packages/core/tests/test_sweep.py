"""``mars-core sweep`` on the SYNTHETIC toy task: real Optuna SQLite storage, real MLflow
SQLite store, tiny budgets."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_tracking_support import db_template, seed_store

from mars_core.cli import main

CLI = Path(__file__).parent / "engine_helpers" / "cli_toy.py"
TINY = ["--set", "trainer.epochs=1", "--set", "data.n_train=8", "--set", "data.n_val=4", "--set", "data.n_test=0",
        "--set", "tracking.sample_predictions=0"]
GRID = ["--grid", "trainer.lr=0.01,0.05", "--grid", "trainer.optimizer=adam,nosuch"]  # 'nosuch' fails


@pytest.fixture
def sweep_dir(toy, in_tmp, tmp_path_factory):
    seed_store(db_template(tmp_path_factory), in_tmp)
    return in_tmp


def _children(parent_id: str) -> list:
    from mars_core.tracking.store import connect

    store = connect(create=False)
    exp = store.client.get_experiment_by_name("toy")
    return store.client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")


@pytest.mark.parametrize("args, message", [
    (["--grid", "trainer.lr"], "expected KEY=VALUES"),
    (["--grid", "trainer.lr=0.1,,0.2"], "empty value"),
    (["--grid", "trainer.nosuch=1,2"], "trainer.nosuch"),
    (["--range", "trainer.lr=0.1:0.01"], "LOW must be below HIGH"),
    (["--grid", "trainer.lr=0.1", "--choice", "trainer.optimizer=adam,sgd"], "cannot be combined"),
    ([], "nothing to sweep"),
])
def test_bad_sweep_options_exit_2_with_one_line(sweep_dir, capsys, args, message):
    assert main(["sweep", "toy", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not (sweep_dir / "optuna.db").exists() or "nosuch" in message


@pytest.mark.slow
def test_grid_sweep_records_failures_resumes_and_registers_the_best(sweep_dir, capsys):
    first = sweep_dir / "first.json"
    # A budget of 2 stops the sweep half-way; the rerun of the same command finishes it.
    code = main(["sweep", "toy", *GRID, *TINY, "--n-trials", "2", "--json", str(first)])
    half = json.loads(first.read_text())["trials"]
    assert len(half) == 2
    assert code == (0 if any(t["state"] == "COMPLETE" for t in half) else 1)  # 1: every trial failed
    out = sweep_dir / "sweep.json"
    assert main(["sweep", "toy", *GRID, *TINY, "--json", str(out)]) == 0
    result = json.loads(out.read_text())

    trials = result["trials"]
    assert len(trials) == 4  # each grid point once: the rerun did not repeat the first two
    points = {(t["params"]["trainer.lr"], t["params"]["trainer.optimizer"]) for t in trials}
    assert points == {(lr, o) for lr in (0.01, 0.05) for o in ("adam", "nosuch")}
    failed = [t for t in trials if t["state"] == "FAIL"]
    assert {t["params"]["trainer.optimizer"] for t in failed} == {"nosuch"} and len(failed) == 2
    assert all("trainer.optimizer" in t["error"] for t in failed)

    children = _children(result["parent_run_id"])
    assert len(children) == 4  # one child run per trial, across both invocations
    status = {c.data.tags["mars.sweep.trial"]: c.info.status for c in children}
    assert sorted(status.values()) == ["FAILED", "FAILED", "FINISHED", "FINISHED"]
    assert all("mars.failure" in c.data.tags for c in children if c.info.status == "FAILED")

    done = [t for t in trials if t["state"] == "COMPLETE"]
    best = max(done, key=lambda t: t["value"])
    assert result["best"]["trial"] == best["trial"] and result["best"]["value"] == pytest.approx(best["value"])

    from mars_core.tracking.store import connect

    store = connect(create=False)
    champion = store.client.get_model_version_by_alias("mars-toy", "champion")
    assert champion.run_id == best["run_id"]
    assert result["best"]["registered_model_uri"] == f"models:/mars-toy/{champion.version}"
    assert len(store.client.search_model_versions("name = 'mars-toy'")) == 1  # trials do not register

    # A rerun of a finished sweep trains nothing and registers nothing again.
    again = sweep_dir / "again.json"
    assert main(["sweep", "toy", *GRID, *TINY, "--json", str(again)]) == 0
    assert len(json.loads(again.read_text())["trials"]) == 4
    assert len(_children(result["parent_run_id"])) == 4
    assert len(store.client.search_model_versions("name = 'mars-toy'")) == 1

    art = Path(store.client.download_artifacts(result["parent_run_id"], "sweep", str(sweep_dir / "dl")))
    rows = list(csv.DictReader((art / "trials.csv").open()))
    assert len(rows) == 4 and {r["state"] for r in rows} == {"COMPLETE", "FAIL"}
    assert (art / "trials.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_two_worker_processes_share_the_grid_without_duplicates(tmp_path, monkeypatch):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MARS_CORE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, str(CLI), "sweep", "toy", "--grid", "trainer.lr=0.01,0.02",
           "--grid", "trainer.batch_size=4,8", *TINY, "--workers", "2", "--json", str(tmp_path / "s.json")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads((tmp_path / "s.json").read_text())
    trials = result["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 4
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 4

    import optuna

    study = optuna.load_study(study_name=result["study"], storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trained = [t for t in study.trials if t.state.name != "PRUNED"]
    assert len(trained) == 4
    assert len({t.user_attrs["mlflow_run_id"] for t in trained}) == 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    children = _children(result["parent_run_id"])
    assert len(children) == 4
    # Both workers trained: each child run records the process that ran it.
    assert len({c.data.tags["mars.sweep.pid"] for c in children}) == 2
