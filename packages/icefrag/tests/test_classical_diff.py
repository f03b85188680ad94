"""Round 2, item 2: the classical change baseline, and the robust contract through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from mars_core.cli import main
from mars_icefrag.models import ClassicalDiff
from mars_icefrag.synthetic import write_scenes


def test_rule_flags_the_changed_block_and_ignores_a_radiometric_change() -> None:
    g = torch.Generator().manual_seed(0)
    t1 = 500 + 40 * torch.randn(1, 1, 64, 64, generator=g)
    t2 = 1.7 * t1 + 300  # the same ground, other exposure: no change
    t2[..., 20:28, 30:38] += 1500  # a new 8x8 bright object
    model = ClassicalDiff(sigma=1.0, threshold_percentile=98.0)
    logits = model(t1, t2)
    assert logits.shape == (1, 1, 64, 64)
    change = torch.sigmoid(logits) > 0.5
    assert change[0, 0, 21:27, 31:37].all()  # the block's interior is flagged
    outside = change.clone()
    outside[..., 16:32, 26:42] = False
    assert int(outside.sum()) <= 0.01 * 64 * 64  # the exposure change alone is (almost) not


def test_identical_dates_are_no_change_not_a_constant_half() -> None:
    t1 = 500 + 40 * torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    assert not bool((torch.sigmoid(ClassicalDiff()(t1, t1.clone())) >= 0.5).any())


def test_dummy_parameter_gets_zero_gradient_and_never_moves() -> None:
    model = ClassicalDiff()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    a, b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    before = model(a, b).detach()
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(a, b), torch.ones(2, 1, 32, 32)).backward()
        assert float(model.anchor.grad) == 0.0
        opt.step()
    assert [n for n, _ in model.named_parameters()] == ["anchor"] and float(model.anchor) == 0.0
    torch.testing.assert_close(model(a, b), before)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold_percentile"):
        ClassicalDiff(threshold_percentile=100)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(root: Path, *extra: str) -> dict:
    out = root.parent / "run.json"
    fast = ["--set", f"data.root={root}", "--set", "data.tile=64",
            "--set", "data.split={train: [synth_s000], val: [synth_s001], test: [synth_s002]}",
            "--set", "trainer.epochs=1", "--set", "trainer.max_steps_per_epoch=1", "--set", "trainer.batch_size=2",
            "--set", "tracking.enabled=true"]
    assert main(["run", "icefrag", *fast, *extra, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def _predict(uri: str, t1: Path, t2: Path, out: Path) -> np.ndarray:
    assert main(["predict", "icefrag", "--model", uri, "--input", str(t1), "--input", str(t2),
                 "--output", str(out), "--tile", "64", "--probability", "float32"]) == 0
    with rasterio.open(out.with_suffix(".prob.tif")) as d:
        return d.read(1)


def _as_8_bit(src: Path, dst: Path) -> Path:
    with rasterio.open(src) as d:
        profile, a = d.profile, d.read(1).astype(np.float64)
    profile.update(dtype="uint8")
    with rasterio.open(dst, "w", **profile) as d:
        d.write(np.round(a / a.max() * 255).astype(np.uint8), 1)  # the scene's own range in 8 bits
    return dst


def test_classical_diff_through_run_and_predict_with_robust_and_fixed_contracts(in_tmp: Path) -> None:
    root = in_tmp / "data"
    write_scenes(root, 3, 128, seed=5)
    run = _run(root, "--set", "model.name=classical-diff")
    assert 0.0 <= run["metrics"]["test"]["balanced_accuracy"] <= 1.0
    t1, t2 = next((root / "t1").glob("*s002*")), next((root / "t2").glob("*s002*"))
    p12 = _predict(run["model_uri"], t1, t2, in_tmp / "p12.tif")
    p8 = _predict(run["model_uri"], _as_8_bit(t1, in_tmp / "t1_8.tif"), _as_8_bit(t2, in_tmp / "t2_8.tif"),
                  in_tmp / "p8.tif")
    assert 0 < float((p12 > 0.5).mean()) < 0.2
    assert float(((p8 > 0.5) != (p12 > 0.5)).mean()) < 0.02  # same decisions from an 8-bit product
    # a learned model (robust contract, the default) reads an 8-bit product of the scene like the
    # 12-bit one: predict applies the stored method with each input's own percentiles
    learned = _run(root, "--set", "model={name: fc-ef}")
    q12 = _predict(learned["model_uri"], t1, t2, in_tmp / "q12.tif")
    q8 = _predict(learned["model_uri"], in_tmp / "t1_8.tif", in_tmp / "t2_8.tif", in_tmp / "q8.tif")
    assert float(np.abs(q8 - q12).max()) < 0.02
    # a model saved with the fixed rule (pre-round-2 contracts) still trains, loads and predicts
    fixed = _run(root, "--set", "model.name=classical-diff", "--set", "data.normalisation=fixed")
    assert np.isfinite(_predict(fixed["model_uri"], t1, t2, in_tmp / "pf.tif")).all()
