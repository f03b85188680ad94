"""Degenerate models are named as such and never become the champion (SYNTHETIC toy data)."""

from __future__ import annotations

import json

import torch

from mars_core.cli import main
from mars_core.engine.health import PredictionHealth, degenerate_reason, summarise_health
from mars_core.masking import IGNORE
from mars_core.tasks import TaskKind

FAST = ["--set", "trainer.epochs=2", "--set", "data.n_train=16", "--set", "tracking.enabled=true"]


def _health(kind: TaskKind, probs: torch.Tensor, target: torch.Tensor) -> dict:
    h = PredictionHealth(kind)
    h.update(probs, target)
    return h.compute()


def test_constant_map_is_degenerate_whatever_the_reference():
    target = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    target[0, 0, :2] = 1
    stats = _health(TaskKind.CHANGE_DETECTION, torch.full((2, 1, 4, 4), 0.576), target)
    assert "constant output" in degenerate_reason(stats)
    assert "constant output" in degenerate_reason(_health(TaskKind.SEGMENTATION, torch.full((1, 1, 4, 4), 0.1),
                                                          torch.zeros(1, 1, 4, 4, dtype=torch.long)))


def test_one_class_everywhere_is_degenerate_only_when_the_reference_has_two():
    probs = torch.linspace(0.6, 0.9, 32).reshape(2, 1, 4, 4)  # varied, but every pixel >= 0.5
    both = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    both[1, 0, 0, 0] = 1
    reason = degenerate_reason(_health(TaskKind.CHANGE_DETECTION, probs, both))
    assert reason is not None and "class 1 for all 32" in reason
    # No change in the reference and none predicted: right, not broken.
    quiet = torch.linspace(0.0, 0.4, 32).reshape(2, 1, 4, 4)
    assert degenerate_reason(_health(TaskKind.CHANGE_DETECTION, quiet, torch.zeros_like(both))) is None
    # A model that finds both classes is sound.
    mixed = probs.clone()
    mixed[0, 0, 0, 0] = 0.2
    assert degenerate_reason(_health(TaskKind.CHANGE_DETECTION, mixed, both)) is None


def test_ignored_pixels_do_not_count():
    probs = torch.tensor([[[[0.1, 0.7], [0.8, 0.9]]]])  # the only "background" call sits on an ignored pixel
    target = torch.tensor([[[[IGNORE, 1], [0, 1]]]])
    stats = _health(TaskKind.SEGMENTATION, probs, target)
    assert stats["predicted_classes"] == {1: 3}
    assert "class 1 for all 3" in degenerate_reason(stats)
    assert stats["probability_min"] > 0.69  # the ignored 0.1 left out of the range too


def test_classification_argmax_all_one_class():
    probs = torch.tensor([[0.8, 0.2], [0.7, 0.3], [0.55, 0.45]])
    labels = torch.tensor([0, 1, 1])
    assert "class 0 for all 3" in degenerate_reason(_health(TaskKind.CLASSIFICATION, probs, labels))
    probs[2] = torch.tensor([0.4, 0.6])
    verdict = summarise_health({"test": _health(TaskKind.CLASSIFICATION, probs, labels)})
    assert verdict["degenerate"] is False and verdict["degenerate_reason"] is None
    assert verdict["prediction_health"]["test"]["predicted_classes"] == {"0": 2, "1": 1}


def test_a_sweep_prefers_a_sound_trial_to_a_better_scoring_degenerate_one():
    from mars_core.sweep.runner import pick_best

    trials = [{"trial": 0, "value": 0.9, "degenerate": "val: constant output"},
              {"trial": 1, "value": 0.6, "degenerate": None}, {"trial": 2, "value": 0.7, "degenerate": None}]
    assert pick_best(trials, "max")["trial"] == 2
    assert pick_best(trials[:1], "max")["trial"] == 0  # all degenerate: still reported
    assert pick_best([], "min") is None


def test_degenerate_run_is_flagged_and_does_not_take_the_champion(toy, in_tmp, capsys):
    out = in_tmp / "constant.json"
    assert main(["run", "toy", *FAST, "--set", "model.name=constant-net", "--json", str(out)]) == 0
    said = capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["degenerate"] is True
    assert "constant output" in result["degenerate_reason"]
    assert "DEGENERATE MODEL" in said
    # Registered (so it can be inspected) but not the champion, although it was the first.
    assert main(["models", "toy"]) == 0
    listing = capsys.readouterr().out
    assert "mars-toy" in listing and "champion" not in listing
    assert main(["evaluate", "toy", "--model", "models:/mars-toy@champion", "--data", str(in_tmp)]) == 2
    assert "no version has earned the alias" in capsys.readouterr().err

    good = in_tmp / "good.json"
    assert main(["run", "toy", *FAST, "--json", str(good)]) == 0
    assert json.loads(good.read_text())["degenerate"] is False
    capsys.readouterr()
    assert main(["models", "toy"]) == 0
    assert "champion" in capsys.readouterr().out

    # evaluate says the same of the degenerate version
    ev = in_tmp / "eval.json"
    assert main(["evaluate", "toy", "--model", "models:/mars-toy/1", "--data", str(in_tmp), "--split", "val",
                 "--json", str(ev)]) == 0
    assert json.loads(ev.read_text())["degenerate"] is True
    assert "DEGENERATE PREDICTIONS" in capsys.readouterr().out
