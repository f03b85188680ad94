"""Models composed after training (ensembles, recalibrated copies) logged by a run of their
own and registered, never as the champion (SYNTHETIC toy data)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from mars_core.cli import main
from mars_core.errors import MarsError
from mars_core.tracking import model_io
from mars_core.tracking.composed import TAG_SOURCE, log_and_register
from mars_core.tracking.model_io import load_model
from mars_core.tracking.store import tracking_uri

FAST = ["--set", "trainer.epochs=2", "--set", "data.n_train=16", "--set", "tracking.enabled=true"]


def test_a_composed_model_is_registered_with_its_sources_and_not_crowned(toy, in_tmp, capsys):
    assert main(["run", "toy", *FAST]) == 0
    client = MlflowClient(tracking_uri())
    assert client.get_registered_model("mars-toy").aliases == {"champion": 1}
    trained = load_model("models:/mars-toy/1")

    result = log_and_register(trained.model, trained.cfg, trained.contract, run_name="copy",
                              params={"member_0": "models:/mars-toy/1"}, sources=["models:/mars-toy/1"])
    assert result["model_uri"] == "models:/mars-toy/2" and result["champion_moved"] is False
    assert client.get_registered_model("mars-toy").aliases == {"champion": 1}
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["member_0"] == "models:/mars-toy/1"
    assert run.data.tags[TAG_SOURCE] == "models:/mars-toy/1"
    assert client.get_experiment(run.info.experiment_id).name == "toy"
    again = load_model("models:/mars-toy/2")
    assert again.cfg.model.name == trained.cfg.model.name

    # where no champion exists yet, it still does not take the alias: as the only
    # champion, with no monitored value, no trained run could ever beat it
    other = trained.cfg.model_copy(update={"tracking": trained.cfg.tracking.model_copy(
        update={"registered_model": "mars-toy-composed"})})
    first = log_and_register(trained.model, other, trained.contract, run_name="copy", params={}, sources=["x"])
    assert first["model_uri"] == "models:/mars-toy-composed/1" and first["champion_moved"] is False
    assert client.get_registered_model("mars-toy-composed").aliases == {}
    assert main(["run", "toy", *FAST, "--set", "tracking.registered_model=mars-toy-composed"]) == 0
    assert client.get_registered_model("mars-toy-composed").aliases == {"champion": 2}


def test_a_failed_log_closes_the_run_as_failed(toy, in_tmp, monkeypatch):
    assert main(["run", "toy", *FAST]) == 0
    trained = load_model("models:/mars-toy/1")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_io, "log_model", broken)
    with pytest.raises(MarsError, match="disk full"):
        log_and_register(trained.model, trained.cfg, trained.contract, run_name="copy", params={}, sources=["x"])
    client = MlflowClient(tracking_uri())
    runs = client.search_runs([client.get_experiment_by_name("toy").experiment_id],
                              filter_string="attributes.run_name = 'copy'")
    assert len(runs) == 1 and runs[0].info.status == "FAILED" and "disk full" in runs[0].data.tags["mars.failure"]
    assert [str(v.version) for v in client.search_model_versions("name='mars-toy'")] == ["1"]
