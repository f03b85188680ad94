"""``hirise-chips``: splits by observation, folds, class balance, bad folders (REAL sample chips)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from icepatch_testutil import copy_sample
from PIL import Image

from mars_core.cli import main
from mars_core.errors import MarsError
from mars_icepatch.chips import HiriseChips


def _obs(chips):
    return {c.observation for c in chips}


def test_splits_by_observation_keep_landmarks_together_and_hold_both_classes():
    src = HiriseChips(None, seed=3)
    parts = {s: src.split_chips(s) for s in ("train", "val", "test")}
    assert sum(len(v) for v in parts.values()) == len(src.split_chips("all")) == 48
    obs = [_obs(v) for v in parts.values()]
    assert not (obs[0] & obs[1]) and not (obs[0] & obs[2]) and not (obs[1] & obs[2])
    lm = [{c.landmark for c in v} for v in parts.values()]
    assert not (lm[0] & lm[1]) and not (lm[0] & lm[2]) and not (lm[1] & lm[2])
    for v in parts.values():
        assert {c.ice for c in v} == {0, 1}
    bal = src.class_balance()
    assert bal["all"] == {"chips": 48, "ice": 24, "no_ice": 24, "observations": 12}
    item = src.dataset("test")[0]
    assert item["image"].shape == (1, 227, 227) and item["label"].item() in (0, 1)


def test_folds_partition_the_observations():
    tests = [_obs(HiriseChips(None, folds=3, fold=k).split_chips("test")) for k in range(3)]
    assert set().union(*tests) == _obs(HiriseChips(None).chips)
    assert sum(len(t) for t in tests) == 12
    bad = HiriseChips(None, folds=13, fold=0)  # more folds than the 12 observations
    assert bad.splits() == ["all"] and len(bad.dataset("all")) == 48  # still evaluable
    with pytest.raises(MarsError, match="data.folds"):
        bad.dataset("train")


def test_fold_val_false_pools_the_validation_fold_into_training():
    with_val = HiriseChips(None, folds=3, fold=1)
    pooled = HiriseChips(None, folds=3, fold=1, fold_val=False)
    assert pooled.splits() == ["train", "test", "all"]
    assert _obs(pooled.split_chips("test")) == _obs(with_val.split_chips("test"))
    assert _obs(pooled.split_chips("train")) == _obs(with_val.split_chips("train")) | _obs(with_val.split_chips("val"))


@pytest.mark.parametrize("fault,match", [
    ("missing-file", "is not in"), ("unknown-label", "unknown label"), ("colour", "not a grayscale"),
    ("no-column", "missing column"), ("landmark-leak", "appears in observations"),
])
def test_bad_folders_are_one_line_errors(tmp_path, capsys, fault, match):
    root = copy_sample(tmp_path / "d", n=8)
    rows = list(csv.DictReader((root / "labels.csv").open()))
    if fault == "missing-file":
        (root / "chips" / rows[3]["file"]).unlink()
    elif fault == "unknown-label":
        rows[2]["ice"] = "yes"
    elif fault == "colour":
        path = root / "chips" / rows[0]["file"]
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, format="JPEG")
    elif fault == "landmark-leak":
        rows.append({**rows[0], "observation": "ESP_000000_0000"})  # one landmark, two observations
    fields = [f for f in rows[0] if not (fault == "no-column" and f == "ice")]
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    if fault == "colour":
        with pytest.raises(MarsError, match=match):
            HiriseChips(str(root)).dataset("all")[0]
        return
    assert main(["icepatch", "balance", "--data", str(root)]) == 2
    err = capsys.readouterr()
    assert match in err.err and len(err.err.strip().splitlines()) == 1, err


def test_chip_stretch_modes():
    from mars_icepatch.chips import stretch

    raw = np.array([[0, 51], [102, 255]], np.uint8)
    x, valid = stretch(raw, "browse")
    assert np.allclose(x, [[0, 0.2], [0.4, 1.0]]) and valid.tolist() == [[False, True], [True, True]]
    y, _ = stretch(raw, "percentile")  # the chip's own 2-98 % of its non-zero pixels
    assert y[0, 1] < 0.05 and y[1, 1] > 0.95
    with pytest.raises(MarsError, match="8-bit"):
        stretch(raw.astype(np.uint16), "browse")
    with pytest.raises(MarsError, match="chip_stretch"):
        HiriseChips(None, chip_stretch="minmax")
