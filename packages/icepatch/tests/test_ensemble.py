"""``mars-core icepatch ensemble``: models saved by separate runs combined into one model
directory whose p is the members' mean p, usable by every command that takes a model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from icepatch_testutil import copy_sample, model_dir, tiled_scene, write_scene

from mars_core.cli import main
from mars_core.errors import MarsError
from mars_core.tracking.model_io import load_model
from mars_icepatch.chips import HiriseChips
from mars_icepatch.ensemble import icepatch_ensemble
from mars_icepatch.folder import chip_probabilities
from mars_icepatch.threshold import decision_threshold, set_decision_threshold

SIZE = 48


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("members")
    return [model_dir(root, input_size=SIZE, seed=s, name=f"m{s}") for s in (0, 1, 2)]


def test_the_ensemble_decides_on_the_members_mean_probability(members, tmp_path, capsys):
    # member 2 carries a threshold of its own: it is kept inside the ensemble
    calibrated = load_model(str(members[2]))
    set_decision_threshold(calibrated.model, 0.3)
    data = copy_sample(tmp_path / "chips")
    chips = HiriseChips(str(data), input_size=SIZE).chips
    probs = []
    for m in members[:2]:
        probs.append(chip_probabilities(load_model(str(m)).model, chips, SIZE, None)[0])
    probs.append(chip_probabilities(calibrated.model, chips, SIZE, None)[0])
    assert np.abs(probs[0] - probs[1]).max() > 1e-3  # the members differ, so the mean is a real test

    from mars_core.tracking.model_io import save_model_dir

    third = save_model_dir(calibrated.model, calibrated.cfg, calibrated.contract, tmp_path / "m2-cal")
    out = tmp_path / "ens"
    assert main(["icepatch", "ensemble", "--model", str(members[0]), "--model", str(members[1]),
                 "--model", str(third), "--out", str(out)]) == 0
    assert "ensemble of 3 models" in capsys.readouterr().out
    ens = load_model(str(out))
    assert ens.cfg.model.name == "icepatch-ensemble" and len(ens.cfg.model.params["members"]) == 3
    assert decision_threshold(ens.model) == 0.5 and ens.contract.threshold == 0.5
    p_ens, _ = chip_probabilities(ens.model, chips, SIZE, None)
    np.testing.assert_allclose(p_ens, np.mean(probs, axis=0), atol=1e-5)

    # verdicts decide with that mean p
    y = np.array([c.ice for c in chips])
    assert main(["icepatch", "verdicts", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "v")]) == 0
    res = json.loads((tmp_path / "v" / "verdicts.json").read_text())
    assert res["chip_accuracy"] == pytest.approx(float(((np.mean(probs, axis=0) >= 0.5).astype(int) == y).mean()))
    # and a whole scene through the core's classification predict
    scene = write_scene(tmp_path / "s.tif", tiled_scene(1, 2))
    assert main(["predict", "icepatch", "--model", str(out), "--input", str(scene), "--output",
                 str(tmp_path / "pred"), "--device", "cpu"]) == 0
    assert (tmp_path / "pred").is_dir() and any((tmp_path / "pred").iterdir())


def test_bad_combinations_exit_2_and_write_nothing(members, tmp_path, capsys):
    other_size = model_dir(tmp_path, input_size=SIZE + 16, seed=3, name="other")
    cases = [
        ([str(members[0])], "at least two"),
        ([str(members[0]), str(other_size)], "differs"),
        ([str(members[0]), str(tmp_path / "missing")], ""),
    ]
    for i, (uris, message) in enumerate(cases):
        out = tmp_path / f"out{i}"
        capsys.readouterr()
        assert main(["icepatch", "ensemble", *(a for u in uris for a in ("--model", u)), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and message in err and len(err.splitlines()) == 1
        assert not out.exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    assert main(["icepatch", "ensemble", "--model", str(members[0]), "--model", str(members[1]),
                 "--out", str(taken)]) == 2
    assert "already exists" in capsys.readouterr().err and (taken / "mine.txt").read_text() == "keep"
    # neither a directory nor the registry to write to
    assert main(["icepatch", "ensemble", "--model", str(members[0]), "--model", str(members[1])]) == 2
    assert "--register" in capsys.readouterr().err


def test_a_failed_registration_takes_back_the_directory(members, tmp_path, monkeypatch, capsys):
    import mars_core.tracking.composed as composed

    def refuse(*args, **kwargs):
        raise MarsError("tracking store unreachable")

    monkeypatch.setattr(composed, "log_and_register", refuse)
    out = tmp_path / "ens"
    assert main(["icepatch", "ensemble", "--model", str(members[0]), "--model", str(members[1]),
                 "--out", str(out), "--register"]) == 2
    assert "unreachable" in capsys.readouterr().err and not out.exists()


def test_the_ensemble_refuses_joint_training_and_bad_member_specs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "icepatch", "--set", "model.name=icepatch-ensemble", "--set", "tracking.enabled=false",
                 "--set", "trainer.epochs=1", "--set", "trainer.progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert "icepatch ensemble" in err and len(err.splitlines()) == 1 and not any(tmp_path.iterdir())
    model = icepatch_ensemble(members=[{"name": "xception-small", "widths": [16], "stem": 8}] * 2)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert model.eval()(x).exp().sum(1).allclose(torch.ones(2), atol=1e-5)  # log of a distribution
    with pytest.raises(MarsError, match="separate runs|trainer.seed"):
        model.train()(x)
    with pytest.raises(MarsError, match="members\\[0\\]"):
        icepatch_ensemble(members=[{"name": "unet"}])
    with pytest.raises(MarsError, match="members\\[1\\]"):
        icepatch_ensemble(members=[{"name": "xception-small"}, {"name": "xception-small", "widths": []}])


def test_members_from_two_registered_runs(tmp_path, monkeypatch, capsys):
    """The documented recipe: runs that differ in trainer.seed, combined from the registry."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    for seed in (0, 1):
        assert main(["run", "icepatch", "--set", "trainer.epochs=1", "--set", "trainer.max_steps_per_epoch=1",
                     "--set", "trainer.batch_size=4", "--set", "trainer.progress=false",
                     "--set", "data.input_size=48", "--set", "model.widths=[16, 32]",
                     "--set", f"trainer.seed={seed}"]) == 0
    out = tmp_path / "ens"
    assert main(["icepatch", "ensemble", "--model", "models:/mars-icepatch/1", "--model", "models:/mars-icepatch/2",
                 "--out", str(out)]) == 0
    data = copy_sample(tmp_path / "chips", n=12)
    capsys.readouterr()
    assert main(["evaluate", "icepatch", "--model", str(out), "--data", str(data), "--split", "all",
                 "--json", str(tmp_path / "e.json")]) == 0
    metrics = json.loads((tmp_path / "e.json").read_text())["metrics"]["all"]
    chips = HiriseChips(str(data), input_size=48).chips
    p = np.mean([chip_probabilities(load_model(f"models:/mars-icepatch/{v}").model, chips, 48,
                                    HiriseChips(str(data)).hot_pixels)[0] for v in (1, 2)], axis=0)
    y = np.array([c.ice for c in chips])
    assert metrics["accuracy"] == pytest.approx(float(((p >= 0.5).astype(int) == y).mean()), abs=1e-6)

    # registered: a third version of mars-icepatch, logged by a run of its own, that gives the
    # same p as the directory and does not take the champion alias from the trained runs
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    champion = client.get_registered_model("mars-icepatch").aliases.get("champion")  # the 1-step runs may have none
    assert main(["icepatch", "ensemble", "--model", "models:/mars-icepatch/1", "--model", "models:/mars-icepatch/2",
                 "--register"]) == 0
    assert "models:/mars-icepatch/3" in capsys.readouterr().out
    version = client.get_model_version("mars-icepatch", "3")
    assert client.get_registered_model("mars-icepatch").aliases.get("champion") == champion
    assert "composed after training" in version.tags["mars.unranked"]
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and run.data.params["member_1"] == "models:/mars-icepatch/2"
    registered = load_model("models:/mars-icepatch/3")
    assert registered.cfg.model.name == "icepatch-ensemble"
    p_registered = chip_probabilities(registered.model, chips, 48, HiriseChips(str(data)).hot_pixels)[0]
    p_dir = chip_probabilities(load_model(str(out)).model, chips, 48, HiriseChips(str(data)).hot_pixels)[0]
    assert np.allclose(p_registered, p_dir, atol=1e-6) and np.allclose(p_registered, p, atol=1e-5)
