"""``data.train_target: landmark``: training on the landmark classes of labels.csv (REAL
sample chips), evaluating and predicting on ice against no ice."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from icepatch_testutil import copy_sample

from mars_core.cli import main
from mars_core.config import load_task_config
from mars_core.errors import MarsError
from mars_core.tracking.model_io import load_model, save_model_dir
from mars_icepatch.chips import CLASSES, HiriseChips
from mars_icepatch.folder import chip_probabilities
from mars_icepatch.models import class_logits, xception_small
from mars_icepatch.plugin import TASK_YAML

SIZE = 48
SAMPLE_LANDMARKS = {"no_ice": ["crater", "dark dune", "other", "slope streak"],
                    "ice": ["bright dune", "spider", "swiss cheese"]}


def test_training_labels_are_landmarks_and_evaluation_labels_stay_ice():
    src = HiriseChips(None, input_size=SIZE, train_target="landmark")
    assert src.input_contract().subclasses == SAMPLE_LANDMARKS
    flat = [k for cls in CLASSES for k in SAMPLE_LANDMARKS[cls]]
    train = src.dataset("train")
    for i, chip in enumerate(train.chips):
        assert flat[int(train[i]["label"])] == chip.landmark_class
    assert len({int(train[i]["label"]) for i in range(len(train))}) > 2
    for split in ("val", "test"):
        ds = src.dataset(split)
        assert [int(ds[i]["label"]) for i in range(len(ds))] == [c.ice for c in ds.chips]
    assert HiriseChips(None, input_size=SIZE).input_contract().subclasses == {}  # the default trains on ice


def test_class_probabilities_are_the_summed_landmark_probabilities():
    fine = torch.randn(5, 7) * 3
    p = class_logits(fine, (4, 3)).softmax(1)
    q = fine.softmax(1)
    assert torch.allclose(p, torch.stack([q[:, :4].sum(1), q[:, 4:].sum(1)], 1), atol=1e-6)


def test_the_model_trains_on_landmarks_and_answers_in_classes():
    torch.manual_seed(0)
    m = xception_small(widths=[16], stem=8, subclasses=[4, 3], tta=True, tta_scales=[1.0, 1.5])
    x = torch.rand(3, 1, 32, 32)
    assert m.train()(x).shape == (3, 7)
    m.eval()
    with torch.no_grad():
        fine = m.head(m.exit(m.blocks(m.stem(x))))
        assert torch.allclose(m._logits(x), class_logits(fine, (4, 3)), atol=1e-6)
        assert m(x).shape == (3, 2)  # D4 and the scales work on the class logits
    with pytest.raises(MarsError, match="one count >= 1 per class"):
        xception_small(subclasses=[4, 0])


def test_a_landmark_on_both_sides_stops_training_but_not_evaluation(tmp_path):
    data = copy_sample(tmp_path / "chips")
    rows = list(csv.DictReader((data / "labels.csv").open()))
    crater = next(r for r in rows if r["landmark_class"] == "crater")
    crater["ice"] = "1"
    with (data / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    src = HiriseChips(str(data), input_size=SIZE, train_target="landmark")
    assert src.input_contract().subclasses == {}
    assert len(src.dataset("all")) > 0  # evaluation reads the folder
    with pytest.raises(MarsError, match="'crater' is labelled both ice and no ice"):
        src.dataset("train")
    with pytest.raises(MarsError, match="train_target must be one of ice, landmark"):
        HiriseChips(None, train_target="landmarks")


def _landmark_dir(tmp_path, seed: int, name: str, target: str = "landmark"):
    cfg = load_task_config(TASK_YAML, overrides=[f"data.input_size={SIZE}", "model.widths=[16, 32]", "model.stem=8",
                                                 f"data.train_target={target}", "model.tta_scales=[1.0]"])
    contract = HiriseChips(None, input_size=SIZE, train_target=target).input_contract()
    torch.manual_seed(seed)
    sub = [len(v) for v in contract.subclasses.values()] or None
    model = xception_small(widths=[16, 32], stem=8, tta=True, subclasses=sub).eval()
    return save_model_dir(model, cfg, contract, tmp_path / name)


def test_run_then_evaluate_and_ensemble_a_landmark_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert main(["run", "icepatch", "--set", "trainer.epochs=1", "--set", "trainer.max_steps_per_epoch=2",
                 "--set", "trainer.batch_size=4", "--set", "trainer.progress=false",
                 "--set", f"data.input_size={SIZE}", "--set", "model.widths=[16, 32]",
                 "--set", "model.tta_scales=[1.0]", "--set", "data.train_target=landmark"]) == 0
    loaded = load_model("models:/mars-icepatch/1")  # rebuilt from the stored contract: 7 landmark logits
    assert loaded.contract.subclasses == SAMPLE_LANDMARKS and loaded.model.head[-1].out_features == 7
    data = copy_sample(tmp_path / "chips", n=12)
    capsys.readouterr()
    assert main(["evaluate", "icepatch", "--model", "models:/mars-icepatch/1", "--data", str(data),
                 "--split", "all", "--json", str(tmp_path / "e.json")]) == 0
    metrics = json.loads((tmp_path / "e.json").read_text())["metrics"]["all"]
    chips = HiriseChips(str(data)).chips
    p, _ = chip_probabilities(loaded.model, chips, SIZE, HiriseChips(str(data)).hot_pixels)
    y = np.array([c.ice for c in chips])
    assert metrics["accuracy"] == pytest.approx(float(((p >= 0.5).astype(int) == y).mean()), abs=1e-6)

    a, b = _landmark_dir(tmp_path, 0, "a"), _landmark_dir(tmp_path, 1, "b")
    assert main(["icepatch", "ensemble", "--model", str(a), "--model", str(b), "--out", str(tmp_path / "ens")]) == 0
    ens = load_model(str(tmp_path / "ens"))
    pa, pb, pe = (chip_probabilities(load_model(str(d)).model, chips, SIZE, None)[0] for d in (a, b, tmp_path / "ens"))
    assert ens.contract.subclasses == SAMPLE_LANDMARKS and np.allclose(pe, (pa + pb) / 2, atol=1e-5)
    plain = _landmark_dir(tmp_path, 2, "plain", target="ice")
    capsys.readouterr()
    assert main(["icepatch", "ensemble", "--model", str(a), "--model", str(plain), "--out", str(tmp_path / "mix")]) == 2
    err = capsys.readouterr().err.strip()
    assert "'subclasses'" in err and len(err.splitlines()) == 1 and not (tmp_path / "mix").exists()


def test_a_model_without_landmark_logits_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "icepatch", "--set", "model.name=resnet18-gray", "--set", "data.train_target=landmark",
                 "--set", "tracking.enabled=false", "--set", "trainer.epochs=1",
                 "--set", "trainer.progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'resnet18-gray' takes no 'subclasses'" in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())
