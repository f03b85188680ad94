"""Spatial cross-validation of the MMLS patch grid and the data-source options around it
(``data.cv``, ``data.train_on``, ``data.normalise``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from mars_core.errors import MarsError
from mars_landslide.cv import CVSpec, block_folds, fold_indices
from mars_landslide.mmls import MMLSSource

# Two clusters of patches on a 20 x 40 grid, like the published train partition (sparse box).
CLUSTER_A = [(r, c) for r in range(2, 10) for c in range(0, 12)]
CLUSTER_B = [(r, c) for r in range(12, 18) for c in range(22, 38) if (r + c) % 5]
POSITIONS = CLUSTER_A + CLUSTER_B


def _chebyshev_min(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> int:
    pa, pb = np.asarray(a)[:, None, :], np.asarray(b)[None, :, :]
    return int(np.abs(pa - pb).max(-1).min())


@pytest.mark.parametrize("gap", [0, 1, 2])
def test_folds_partition_the_patches_with_the_gap(gap: int) -> None:
    k = 4
    tests: list[int] = []
    for fold in range(k):
        idx = fold_indices(POSITIONS, CVSpec(folds=k, fold=fold, gap=gap, block=4))
        train, test, gapped = set(idx["train"]), set(idx["test"]), set(idx["gap"])
        assert train and test
        assert not (train & test) and not (train & gapped) and not (test & gapped)
        assert train | test | gapped == set(range(len(POSITIONS)))
        d = _chebyshev_min([POSITIONS[i] for i in train], [POSITIONS[i] for i in test])
        assert d > gap  # at least `gap` whole patches between training and held-out terrain
        if gap == 0:
            assert not gapped
        tests += idx["test"]
    assert sorted(tests) == list(range(len(POSITIONS)))  # every patch held out exactly once


def test_folds_are_contiguous_blocks_and_balanced() -> None:
    folds = block_folds(POSITIONS, 4, block=4, seed=0)
    idx = [fold_indices(POSITIONS, CVSpec(folds=4, fold=f, block=4))["test"] for f in range(4)]
    sizes = [len(i) for i in idx]
    assert max(sizes) - min(sizes) <= 16  # one block at most
    for f, held in enumerate(idx):  # a held-out fold is a union of whole 4x4 blocks
        blocks = {(POSITIONS[i][0] // 4, POSITIONS[i][1] // 4) for i in held}
        assert all(folds[b] == f for b in blocks)
        members = {i for i, (r, c) in enumerate(POSITIONS) if (r // 4, c // 4) in blocks}
        assert members == set(held)
    assert (block_folds(POSITIONS, 4, block=4, seed=1) != folds).any()  # the seed matters


@pytest.mark.parametrize("spec, message", [
    ({"folds": 1}, "data.cv.folds must be a whole number >= 2"),
    ({"folds": 5, "fold": 5}, "data.cv.fold must be between 0 and 4"),
    ({"fold": -1}, "data.cv.fold must be a whole number >= 0"),
    ({"gap": -1}, "data.cv.gap must be a whole number >= 0"),
    ({"block": 0}, "data.cv.block must be a whole number >= 1"),
    ({"folds": True}, "data.cv.folds must be a whole number"),
    ({"folds": 2.5}, "data.cv.folds must be a whole number"),
    ({"fold_count": 3}, "unknown key(s) fold_count"),
    ("5", "data.cv must be a mapping"),
])
def test_bad_cv_values(spec: object, message: str) -> None:
    with pytest.raises(MarsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        CVSpec.parse(spec)  # type: ignore[arg-type]


def test_more_folds_than_blocks_and_no_training_left() -> None:
    with pytest.raises(MarsError, match="fill only 2 block"):
        block_folds([(0, 0), (0, 9)], 3, block=5)
    with pytest.raises(MarsError, match="no training patch is left"):
        fold_indices([(0, 0), (0, 1)], CVSpec(folds=2, fold=0, block=1, gap=1))
    with pytest.raises(MarsError, match="grid position R_C of every patch"):
        fold_indices([(0, 0), None], CVSpec(folds=2))


def write_image(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, arr)


def _grid_root(tmp_path: Path) -> Path:
    """train: a 3x4 block of patches; val: the row below (as in the published layout)."""
    rng = np.random.default_rng(1)
    for part, prefix, cells in (("train_partition", "", [(r, c) for r in range(3) for c in range(4)]),
                                ("validation_partition", "", [(3, c) for c in range(4)])):
        for r, c in cells:
            write_image(tmp_path / part / "images" / f"{prefix}Image_patch_{r}_{c}.tif",
                        rng.random((128, 128, 7), dtype=np.float32))
            write_image(tmp_path / part / "masks" / f"{prefix}Mask_patch_{r}_{c}.tif",
                        (rng.random((128, 128)) > 0.5).astype(np.float32))
    return tmp_path


def test_source_pools_train_and_val_and_serves_folds(tmp_path: Path) -> None:
    root = _grid_root(tmp_path)
    pooled = MMLSSource(str(root), train_on=["train", "val"])
    assert pooled.splits() == ["train"] and len(pooled.dataset("train")) == 16
    with pytest.raises(MarsError, match="pooled into training"):
        pooled.dataset("val")
    assert MMLSSource(str(root), train_on="auto").splits() == ["train"]
    assert MMLSSource(str(root)).splits() == ["train", "val"]  # the class default keeps val apart
    seen: list[tuple[int, int]] = []
    for fold in range(2):
        src = MMLSSource(str(root), train_on=["train", "val"], cv={"folds": 2, "fold": fold, "block": 2, "gap": 1})
        assert src.splits() == ["train", "test"]
        train, test = src.dataset("train"), src.dataset("test")
        assert set(train.names).isdisjoint(test.names)
        assert _chebyshev_min(train.positions, test.positions) > 1  # type: ignore[arg-type]
        seen += test.positions  # type: ignore[arg-type]
        with pytest.raises(MarsError, match="pooled into training"):
            src.dataset("val")
    assert sorted(seen) == sorted([(r, c) for r in range(4) for c in range(4)])


def test_bad_train_on_and_normalise(tmp_path: Path) -> None:
    root = _grid_root(tmp_path)
    with pytest.raises(MarsError, match="data.cv is set"):
        MMLSSource(str(root), cv={"folds": 2, "block": 2}).dataset("val")
    for bad in (["test"], [], ["train", "train"], "everything"):
        with pytest.raises(MarsError, match="data.train_on must be"):
            MMLSSource(str(root), train_on=bad)
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    (root / "validation_partition").rename(only_test / "test_partition")
    src = MMLSSource(str(only_test), train_on="auto")
    assert src.splits() == ["test"] and len(src.dataset("test")) == 4  # evaluating needs no train partition
    with pytest.raises(MarsError, match="names partition"):
        MMLSSource(str(only_test), train_on=["train", "val"]).dataset("train")
    with pytest.raises(MarsError, match="data.normalise must be one of"):
        MMLSSource(str(root), normalise="zscore")


def test_normalisations(tmp_path: Path) -> None:
    root = _grid_root(tmp_path)
    raw = MMLSSource(str(root), normalise="none").dataset("train").images
    assert float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0
    robust = MMLSSource(str(root), normalise="robust")
    x = robust.dataset("train").images.numpy()
    lo, hi = np.percentile(x, [2, 98], axis=(-2, -1))
    np.testing.assert_allclose(lo, 0.0, atol=1e-4)
    np.testing.assert_allclose(hi, 1.0, atol=1e-4)
    assert robust.input_contract().normalisation.method == "robust"
    fixed = MMLSSource(str(root)).dataset("train").images
    assert abs(float(fixed.mean()) - float(raw.mean())) > 0.01  # train_stats changes the values


def test_cv_mistake_through_the_cli_is_one_line_exit_2(tmp_path: Path) -> None:
    import contextlib
    import io

    from mars_core import plugins
    from mars_core.cli import main

    err = io.StringIO()
    plugins.reset()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", "landslide", "--set", "data.cv.folds=1", "--set", "tracking.enabled=false",
                         "--set", f"trainer.checkpoint_dir={tmp_path / 'ck'}"])
    finally:
        plugins.reset()
    assert code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "data.cv.folds must be a whole number >= 2" in lines[0]
    assert not (tmp_path / "ck").exists()


def test_real_folds_cover_train_and_val(mmls_root: Path) -> None:
    from mars_landslide.mmls import scan_split

    positions = scan_split(mmls_root / "train_partition").positions + scan_split(
        mmls_root / "validation_partition").positions
    held = []
    for fold in range(5):
        idx = fold_indices(positions, CVSpec(folds=5, fold=fold))
        assert 50 <= len(idx["test"]) <= 70 and len(idx["train"]) >= 180
        held += idx["test"]
    assert sorted(held) == list(range(len(positions)))


def test_default_run_on_a_root_trains_on_train_and_val_and_reports_nothing_trained_on(tmp_path: Path) -> None:
    """``mars-core run landslide --data ROOT``: train + val pooled (data.train_on: auto), so
    no validation figure is reported; the run still trains and writes its results."""
    import contextlib
    import io
    import json

    from mars_core import plugins
    from mars_core.cli import main

    root = _grid_root(tmp_path / "mmls")
    err = io.StringIO()
    plugins.reset()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["run", "landslide", "--data", str(root), "--set", "trainer.epochs=1",
                         "--set", "trainer.max_steps_per_epoch=1", "--set", "trainer.batch_size=4",
                         "--set", "tracking.enabled=false", "--set", "trainer.progress=false",
                         "--set", f"trainer.checkpoint_dir={tmp_path / 'ck'}", "--json", str(tmp_path / "run.json")])
    finally:
        plugins.reset()
    assert code == 0, err.getvalue()[-2000:]
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["metrics"] == {}  # val was trained on; no test partition in this root
