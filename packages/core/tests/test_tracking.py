"""MLflow tracking and registry against the embedded SQLite store (in a tmp directory)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_tracking_support import (
    check_logged,
    check_model_files,
    check_predictions,
    db_template,
    in_memory_predictions,
    make_summary,
    seed_store,
    toy_config,
    tracked_run,
    train_tiny,
    val_batch,
)

from mars_core.errors import MarsError
from mars_core.tracking import list_models, load_model, save_model_dir
from mars_core.tracking.mlflow_tracker import MlflowTracker
from mars_core.tracking.store import connect, tracking_uri


@pytest.fixture
def store_dir(toy, in_tmp, tmp_path_factory):
    """The toy task registered, cwd in a tmp dir holding an empty migrated mlflow.db."""
    seed_store(db_template(tmp_path_factory), in_tmp)
    return in_tmp


def test_sqlite_log_register_champion_and_load(store_dir, monkeypatch) -> None:
    cfg = toy_config()
    first = tracked_run(cfg, best_value=0.5, seed=1)
    assert tracking_uri() == f"sqlite:///{(store_dir / 'mlflow.db').resolve()}"
    assert (store_dir / "mlflow.db").is_file() and (store_dir / "mlartifacts").is_dir()
    store = connect()
    check_logged(first, store)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)  # for mlflow.* helpers in the checks
    check_model_files(first.model_uri)
    champion = "models:/mars-toy@champion"
    assert first.extra["champion_moved"] is True
    assert str(store.client.get_model_version_by_alias("mars-toy", "champion").version) == "1"

    second = tracked_run(cfg, best_value=0.7, seed=2)  # better (mode max): takes the alias
    assert second.extra["champion_moved"] is True and second.extra["previous_champion"] == "1"
    assert str(store.client.get_model_version_by_alias("mars-toy", "champion").version) == "2"

    third = tracked_run(cfg, best_value=0.6, seed=3)  # worse than 0.7: alias stays
    assert third.extra["champion_moved"] is False and third.extra["model_version"] == "3"
    assert str(store.client.get_model_version_by_alias("mars-toy", "champion").version) == "2"

    check_predictions(champion, second.model)
    # the champion really is run 2's model, not the latest one
    x = val_batch()["image"].numpy()
    assert not np.allclose(load_model(champion).predict(x), in_memory_predictions(third.model, x))
    check_predictions(f"runs:/{third.run_id}/model", third.model)
    check_predictions("models:/mars-toy/1", first.model)

    rows = list_models("toy")
    assert [r["version"] for r in rows] == ["3", "2", "1"]
    assert rows[1]["aliases"] == ["champion"] and rows[0]["aliases"] == []
    assert rows[1]["monitor_value"] == pytest.approx(0.7) and rows[1]["run_id"] == second.run_id
    assert rows[0]["metrics"]["test/miou"] == pytest.approx(0.31) and rows[0]["created"]
    assert list_models("other-task") == []


def test_min_mode_and_custom_names(store_dir) -> None:
    cfg = toy_config("trainer.monitor=val/loss", "trainer.mode=min", "tracking.experiment=exp-a",
                     "tracking.registered_model=custom-toy")
    a = tracked_run(cfg, best_value=0.4, seed=1)
    b = tracked_run(cfg, best_value=0.5, seed=2)  # higher loss: worse
    c = tracked_run(cfg, best_value=0.3, seed=3)
    assert [a.extra["champion_moved"], b.extra["champion_moved"], c.extra["champion_moved"]] == [
        True, False, True]
    store = connect()
    assert store.client.get_experiment_by_name("exp-a") is not None
    assert str(store.client.get_model_version_by_alias("custom-toy", "champion").version) == "3"
    assert [r["name"] for r in list_models("toy")] == ["custom-toy"] * 3


def test_no_registration_when_disabled(store_dir) -> None:
    cfg = toy_config("tracking.register_model=false")
    summary = tracked_run(cfg, best_value=0.5, seed=1)
    assert summary.extra["champion_moved"] is False and "model_version" not in summary.extra
    assert list_models() == []
    np.testing.assert_allclose(
        load_model(summary.model_uri).predict(val_batch()["image"].numpy()),
        in_memory_predictions(summary.model, val_batch()["image"].numpy()), rtol=1e-5, atol=1e-6)


def test_resume_reopens_the_same_run(store_dir) -> None:
    cfg = toy_config()
    model = train_tiny(cfg, seed=1)
    summary = make_summary(cfg, model, 0.5)
    tracker = MlflowTracker(timeout_s=5)
    run_id = tracker.start(cfg, summary.task)
    tracker.log_metrics({"val/miou": 0.1}, step=1)
    tracker.fail("KeyboardInterrupt: interrupted")
    store = connect()
    assert store.client.get_run(run_id).info.status == "KILLED"

    cfg2 = toy_config("trainer.epochs=5")
    again = MlflowTracker(timeout_s=5)
    assert again.start(cfg2, summary.task, resume_run_id=run_id) == run_id
    again.log_metrics({"val/miou": 0.2}, step=2)
    run = store.client.get_run(run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params["trainer.epochs"] == "3"  # MLflow params are immutable
    assert run.data.tags["mars.resume.changed_params"] == "trainer.epochs"
    assert [m.step for m in store.client.get_metric_history(run_id, "val/miou")] == [1, 2]
    again.fail("RuntimeError: boom")
    assert store.client.get_run(run_id).info.status == "FAILED"
    with pytest.raises(MarsError, match="cannot resume"):
        MlflowTracker(timeout_s=5).start(cfg, summary.task, resume_run_id="0" * 32)


def test_long_params_are_truncated(store_dir) -> None:
    cfg = toy_config("model.note=" + "x" * 7000)  # a factory param nobody should print whole
    tracker = MlflowTracker(timeout_s=5)
    from mars_core.plugins import get_registries

    run_id = tracker.start(cfg, get_registries().task("toy"))
    value = connect().client.get_run(run_id).data.params["model.note"]
    assert len(value) == 6000 and value.endswith("see config.yaml]")
    tracker.fail("done")


def test_save_model_dir_and_local_load(toy, in_tmp, capsys) -> None:
    import mlflow.pyfunc

    cfg = toy_config()
    model = train_tiny(cfg, seed=4)
    path = save_model_dir(model, cfg, make_summary(cfg, model, 0.1).contract, in_tmp / "saved")
    x = val_batch()["image"].numpy()
    expected = in_memory_predictions(model, x)
    np.testing.assert_allclose(load_model(str(path)).predict(x), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mlflow.pyfunc.load_model(str(path)).predict(x), expected, rtol=1e-5, atol=1e-6)
    assert capsys.readouterr().err == ""
    assert not (in_tmp / "mlflow.db").exists()  # a local directory needs no tracking store

    with pytest.raises(MarsError, match="expects 2"):
        load_model(str(path)).predict(np.zeros((1, 3, 16, 16), np.float32))

    # a model trained with another major version of a package: warned once, still loaded
    contract_file = path / "artifacts" / "contract.json"
    data = json.loads(contract_file.read_text())
    data["package_versions"]["torch"] = "1.0.0"
    data["package_versions"]["mars-nowhere"] = "0.1.0"
    contract_file.write_text(json.dumps(data))
    loaded = load_model(str(path))
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "torch 1.0.0" in err and "mars-nowhere 0.1.0 (not installed)" in err
    assert len(loaded.version_mismatches) == 2


def test_model_uri_errors_are_one_line_mars_errors(store_dir) -> None:
    tracked_run(toy_config(), best_value=0.5, seed=1)
    for uri, pattern in [
        ("models:/mars-toy/9", "cannot load model"),
        ("models:/mars-nope@champion", "cannot load model"),
        ("runs:/" + "0" * 32 + "/model", "cannot load model"),
        (str(store_dir / "no-such-dir"), "neither an MLflow model URI nor a directory"),
    ]:
        with pytest.raises(MarsError, match=pattern) as info:
            load_model(uri)
        assert "\n" not in str(info.value)


def test_unknown_architecture_names_the_problem(toy, in_tmp) -> None:
    cfg = toy_config()
    path = save_model_dir(train_tiny(cfg, seed=1), cfg, make_summary(cfg, train_tiny(cfg, 1), 0.1).contract,
                          in_tmp / "saved")
    toy.uninstall()
    from mars_core import plugins

    plugins.reset()
    with pytest.raises(MarsError, match="unknown model 'tiny-net'"):
        load_model(str(path))
    toy.install()


def test_end_to_end_through_engine(store_dir) -> None:
    engine = pytest.importorskip("mars_core.engine")
    if not hasattr(engine, "train"):
        pytest.skip("mars_core.engine.train not available yet")
    cfg = toy_config("trainer.epochs=2", "trainer.max_steps_per_epoch=2", "tracking.sample_predictions=2")
    summary = engine.train(cfg, MlflowTracker(timeout_s=5))
    assert summary.model_uri == "models:/mars-toy/1" and summary.extra["champion_moved"] is True
    store = connect()
    run = store.client.get_run(summary.run_id)
    assert run.info.status == "FINISHED" and run.data.params["trainer.epochs"] == "2"
    steps = [m.step for m in store.client.get_metric_history(summary.run_id, "train/loss")]
    assert steps == [1, 2]
    assert {a.path for a in store.client.list_artifacts(summary.run_id, "plots")} == {
        "plots/training_curves.png", "plots/predictions.png"}
    x = val_batch()["image"].numpy()
    np.testing.assert_allclose(load_model("models:/mars-toy@champion").predict(x),
                               in_memory_predictions(summary.model, x), rtol=1e-5, atol=1e-6)


def test_reading_commands_do_not_create_a_store(toy, in_tmp) -> None:
    assert list_models() == []
    with pytest.raises(MarsError, match="no MLflow store at"):
        load_model("models:/mars-toy@champion")
    assert not (in_tmp / "mlflow.db").exists()
