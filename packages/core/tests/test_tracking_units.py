"""Fast checks of the tracking helpers that need no MLflow store."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mars_core.tasks import TaskKind
from mars_core.tracking import plots
from mars_core.tracking.mlflow_tracker import final_step, param_value, tracker_for
from mars_core.tracking.model_io import _compatible
from mars_core.tracking.registry_ops import better, decide


class _Version:
    def __init__(self, version: str, **tags: str) -> None:
        self.version, self.tags = version, tags


def test_param_values_are_strings_within_mlflow_limits() -> None:
    assert param_value(None) == "None"
    assert param_value([1, 2]) == "[1, 2]"
    assert param_value({"a": 1}) == "{a: 1}"
    long = param_value("é" * 10_000)
    assert len(long) == 6000 and long.startswith("éé") and "+10000 chars" in long


def test_final_metrics_go_one_step_after_the_last_epoch() -> None:
    assert final_step([{"epoch": 1}, {"epoch": 2}]) == 3
    assert final_step([{"epoch": 5}]) == 6  # resumed runs keep their epoch numbers
    assert final_step([]) == 1


@pytest.mark.parametrize(("new", "old", "mode", "expected"), [
    (0.7, 0.5, "max", True), (0.5, 0.5, "max", False), (0.4, 0.5, "max", False),
    (0.4, 0.5, "min", True), (0.6, 0.5, "min", False), (None, 0.5, "max", False), (0.5, None, "min", False),
])
def test_better_is_strict_and_directional(new, old, mode, expected) -> None:
    assert better(new, old, mode) is expected


def test_champion_decisions() -> None:
    assert decide(None, "val/miou", "max", None)[0] is True  # first version always crowned
    champ = _Version("3", monitor="val/miou", mode="max", monitor_value="0.5")
    assert decide(champ, "val/miou", "max", 0.6)[0] is True
    assert decide(champ, "val/miou", "max", 0.5)[0] is False
    assert decide(champ, "val/miou", "max", float("nan"))[0] is False
    moved, reason = decide(champ, "val/loss", "min", 0.01)  # other metric: incomparable, stays
    assert moved is False and "val/miou" in reason
    assert decide(_Version("1"), "val/miou", "max", 0.9)[0] is False  # untagged (hand-set) champion


def test_version_compatibility_rule() -> None:
    assert _compatible("2.3.1", "2.9.0") and not _compatible("2.3.1", "3.0.0")
    assert _compatible("0.1.0", "0.1.5+local") and not _compatible("0.1.0", "0.2.0")


def test_tracker_for_respects_config_and_rank(toy) -> None:
    from test_tracking_support import toy_config

    from mars_core.tracking.base import NullTracker
    from mars_core.tracking.mlflow_tracker import MlflowTracker

    assert isinstance(tracker_for(toy_config("tracking.enabled=false")), NullTracker)
    assert isinstance(tracker_for(toy_config(), rank=1), NullTracker)
    tracker = tracker_for(toy_config("tracking.timeout_s=3"))
    assert isinstance(tracker, MlflowTracker) and tracker.timeout_s == 3


def test_training_curves_and_default_prediction_grid(tmp_path) -> None:
    history = [{"epoch": e, "lr": 0.1, "train/loss": 1 / e, "val/loss": 2 / e, "val/miou": e / 10}
               for e in (1, 2, 3)]
    curves = plots.training_curves(history, tmp_path / "c.png")
    assert curves.read_bytes()[:4] == b"\x89PNG"
    empty = plots.training_curves([], tmp_path / "e.png")
    assert empty.is_file()

    samples = {"image": torch.randn(3, 4, 8, 8), "mask": torch.ones(3, 1, 8, 8), "probs": torch.rand(3, 1, 8, 8)}
    panels = plots.default_panels(TaskKind.SEGMENTATION, {k: v[0] for k, v in samples.items()})
    assert [t for t, _ in panels] == ["image", "truth", "probability", "prediction > 0.5"]
    rgb = panels[0][1]
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert plots.prediction_grid(samples, TaskKind.SEGMENTATION, tmp_path / "p.png", limit=2).is_file()
    assert plots.prediction_grid({}, TaskKind.SEGMENTATION, tmp_path / "none.png") is None


def test_pairs_classification_and_preview_panels(tmp_path) -> None:
    pair = {"image1": torch.randn(2, 8, 8), "image2": torch.randn(2, 8, 8), "mask": torch.zeros(1, 8, 8),
            "probs": torch.rand(1, 8, 8)}
    titles = [t for t, _ in plots.default_panels(TaskKind.CHANGE_DETECTION, pair)]
    assert titles[:2] == ["image1", "image2"] and "truth" in titles
    assert plots.as_rgb(pair["image1"]).shape == (8, 8, 3)  # 2 bands shown as grey

    chip = {"image": torch.randn(3, 8, 8), "label": torch.tensor(1), "probs": torch.tensor([0.2, 0.8])}
    (title, _), = plots.default_panels(TaskKind.CLASSIFICATION, chip, classes=["rock", "ice"])
    assert "truth ice" in title and "pred ice (0.80)" in title

    seen = []

    def preview(sample):
        seen.append(sorted(sample))
        return [("custom", np.zeros((8, 8, 3), np.uint8)), ("map", np.ones((8, 8)))]

    batch = {k: v.unsqueeze(0).repeat(2, *([1] * v.ndim)) for k, v in pair.items()}
    out = plots.prediction_grid(batch, TaskKind.CHANGE_DETECTION, tmp_path / "g.png", preview=preview)
    assert out is not None and out.is_file()
    assert seen == [["image1", "image2", "mask", "probs"]] * 2  # one call per sample, unbatched
