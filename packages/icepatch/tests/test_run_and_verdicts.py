"""End to end through the CLI with a real MLflow SQLite store: train on the bundled REAL
sample, evaluate ``--split all``, verdicts per observation for a chip folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from icepatch_testutil import copy_sample

from mars_core.cli import main
from mars_icepatch.models import parameter_count, resnet18, xception_small


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def test_run_evaluate_and_verdicts(store, capsys):
    assert main(["run", "icepatch", "--set", "trainer.epochs=1", "--set", "trainer.max_steps_per_epoch=1",
                 "--set", "trainer.batch_size=4", "--set", "trainer.progress=false",
                 "--set", "data.input_size=48"]) == 0
    uri = "models:/mars-icepatch/1"
    data = copy_sample(store / "chips", n=12)
    assert main(["evaluate", "icepatch", "--model", uri, "--data", str(data), "--split", "all",
                 "--json", str(store / "e.json")]) == 0
    metrics = json.loads((store / "e.json").read_text())
    assert {"accuracy", "balanced_accuracy", "f1", "auroc"} <= set(metrics["metrics"]["all"])
    out = store / "v"
    assert main(["icepatch", "verdicts", "--model", uri, "--data", str(data), "--out", str(out)]) == 0
    res = json.loads((out / "verdicts.json").read_text())
    assert res["chips"] == 12 and set(res["observations"]) == {"ESP_046991_0950", "PSP_002804_0930",
                                                               "ESP_049651_1050"}
    assert all(v["verdict"] in ("good", "hard", "bad") for v in res["observations"].values())
    assert (out / "montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "chips.csv").read_text().splitlines()) == 13
    capsys.readouterr()
    before = (out / "verdicts.json").read_bytes()
    assert main(["icepatch", "verdicts", "--model", uri, "--data", str(data), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and (out / "verdicts.json").read_bytes() == before
    (data / "chips" / next(iter((data / "chips").iterdir())).name).unlink()
    assert main(["icepatch", "verdicts", "--model", uri, "--data", str(data), "--out", str(store / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and not (store / "w").exists()


def test_the_deploy_recipe_trains_on_every_observation(store, capsys):
    """``data.split=[1,0,0]`` (README): no validation or test split, the model still lands
    in the registry (nothing held out to compare against, so it is registered as is)."""
    data = copy_sample(store / "chips", n=12)
    assert main(["run", "icepatch", "--data", str(data), "--set", "data.split=[1,0,0]",
                 "--set", "trainer.epochs=1", "--set", "trainer.max_steps_per_epoch=1",
                 "--set", "trainer.batch_size=4", "--set", "trainer.progress=false",
                 "--set", "data.input_size=48", "--json", str(store / "run.json")]) == 0
    run = json.loads((store / "run.json").read_text())
    assert not any(split in run["metrics"] for split in ("val", "test")), run["metrics"]
    import mlflow

    assert mlflow.MlflowClient().get_model_version("mars-icepatch", "1").run_id == run["run_id"]


def test_models_give_two_logits_and_depth_is_configurable():
    x = torch.zeros(2, 1, 64, 64)
    small, deep = xception_small(widths=[16, 32]), xception_small(widths=[16, 32, 64, 128])
    assert small(x).shape == deep(x).shape == (2, 2)
    assert parameter_count(deep) > 4 * parameter_count(small)
    assert resnet18()(x).shape == (2, 2)


def test_plugin_imports_no_torch():
    code = ("import sys, mars_icepatch.plugin as p, mars_icepatch.cli; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
