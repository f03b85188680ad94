"""Throughput paths of streaming prediction: batch-norm folding, bfloat16, nodata tiles skipped.

Each optimised run is compared with the straightforward path (``optimise=False``: the model as
given, float32) on small SYNTHETIC GeoTIFFs written in the test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_raster import F32, MEAN, STD, contract, read, scene, write_tif
from torch import nn

import mars_core.raster.predict as predict_module
from mars_core.errors import MarsError
from mars_core.raster import predict_scene
from mars_core.raster.fuse import called_modules, fold_batchnorm


class Block(nn.Module):
    """Residual block: conv1's output also feeds the skip, so conv1/bn1 must NOT be folded."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(y)))) + y)


class Shared(nn.Module):
    """One conv called twice, once without its batch norm: must NOT be folded."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x)) + self.conv(x)


class Bypassed(nn.Module):
    """Its forward would fold conv -> bn, but the parent calls the children itself, with a
    ReLU between them: tracing this forward would fold the wrong thing."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class Net(nn.Module):
    """Three foldable pairs (stem, block.conv2/bn2, up) among three traps; untraceable root."""

    FOLDABLE = 3

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block, self.shared, self.enc = Block(8), Shared(8), Bypassed(8)
        self.down = nn.Conv2d(8, 8, 2, stride=2)
        self.up = nn.Sequential(nn.ConvTranspose2d(8, 8, 2, stride=2, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Conv2d(8, 1, 1)
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():  # batch norms far from the identity, so a wrong fold shows
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(torch.randn(8, generator=g) * 0.5)
                    m.running_var.copy_(torch.rand(8, generator=g) * 2 + 0.3)
                    m.weight.copy_(torch.rand(8, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(8, generator=g) * 0.3)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 2 or x.shape[-2] % 2:  # shape-dependent: fx cannot trace the root
            raise ValueError("even sizes only")
        x = self.shared(self.block(self.stem(x[:, :1])))
        x = self.enc.bn(torch.relu(self.enc.conv(x)))
        return self.head(self.up(self.down(x)))


def n_norms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_fold_batchnorm_folds_exactly_the_safe_pairs_and_leaves_the_model_alone():
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x)
        called = called_modules(model, lambda: model(x))
        folded, n = fold_batchnorm(model, called)
        got = folded(x)
    assert "enc" not in called and "enc.conv" in called  # the bypassed parent never ran
    assert n == Net.FOLDABLE
    assert n_norms(folded) == n_norms(model) - Net.FOLDABLE
    assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5)
    assert n_norms(model) == 6 and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.fixture()
def even_scene(tmp_path):
    return write_tif(tmp_path / "in.tif", scene(150, 230, seed=2))


def test_optimised_prediction_matches_the_model_as_given(tmp_path, even_scene):
    model = Net()
    fast = predict_scene(model, contract(), [even_scene], tmp_path / "fast.tif", progress=False, **F32)
    plain = predict_scene(model, contract(), [even_scene], tmp_path / "plain.tif", progress=False,
                          optimise=False, **F32)
    assert fast.optimisations == (f"{Net.FOLDABLE} batch norm(s) folded",) and fast.warnings == ()
    assert plain.optimisations == ()
    p_fast, p_plain = read(fast.probability)[0], read(plain.probability)[0]
    assert np.abs(p_fast - p_plain).max() < 1e-5
    # and both are the model applied to the whole normalised scene: its receptive radius (5 px)
    # is inside the 8 px margin and every tile starts on an even pixel (stride-2 layers)
    with torch.inference_mode():
        x = torch.from_numpy((scene(150, 230, seed=2) - MEAN) / STD)[None, None]
        expected = torch.sigmoid(model(x))[0, 0].numpy()
    assert np.abs(p_plain - expected).max() < 1e-5


def test_optimised_copy_that_disagrees_is_not_used(tmp_path, even_scene, monkeypatch):
    wrong = Net()
    with torch.no_grad():
        wrong.head.bias.add_(3.0)
    monkeypatch.setattr(predict_module, "fold_batchnorm", lambda model, called: (wrong, 1))
    model = Net()
    res = predict_scene(model, contract(), [even_scene], tmp_path / "o.tif", progress=False, batch_size=2, **F32)
    plain = predict_scene(model, contract(), [even_scene], tmp_path / "p.tif", progress=False, optimise=False,
                          batch_size=2, **F32)
    assert res.optimisations == ()
    assert any(w.startswith("optimised model not used") for w in res.warnings)
    assert np.abs(read(res.probability)[0] - read(plain.probability)[0]).max() < 1e-6


def test_bfloat16_is_close_to_float32_and_reported(tmp_path, even_scene):
    model = Net()
    low = predict_scene(model, contract(), [even_scene], tmp_path / "b.tif", progress=False, precision="bfloat16",
                        **F32)
    full = predict_scene(model, contract(), [even_scene], tmp_path / "f.tif", progress=False, optimise=False, **F32)
    assert "bfloat16 autocast" in low.optimisations
    diff = np.abs(read(low.probability)[0] - read(full.probability)[0])
    assert 0 < diff.max() < 0.02  # bfloat16 really ran (not bit-equal), and stayed close
    with pytest.raises(MarsError, match="precision must be one of"):
        predict_scene(model, contract(), [even_scene], tmp_path / "x.tif", progress=False, precision="float16")
    assert not (tmp_path / "x.tif").exists()


class CountingConv(nn.Module):
    """A fixed 3x3 conv that counts the tiles it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.tiles = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.tiles += x.shape[0]
        return self.conv(x[:, :1])


def test_tiles_without_valid_pixels_never_reach_the_model(tmp_path):
    raw = scene(256, 320, seed=4).clip(1, None)
    raw[64:192, 0:128] = 0  # nodata over exactly 2 x 2 of the 4 x 5 tiles of 64 px (no overlap)
    raw[0:64, 0:63] = 0  # tile (0, 0) keeps one valid column: still predicted
    src = write_tif(tmp_path / "in.tif", raw, nodata=0)
    model = CountingConv()
    res = predict_scene(model, contract(), [src], tmp_path / "o.tif", overlap=0.0, batch_size=3, progress=False,
                        **F32)
    assert res.n_tiles == 20 and model.tiles == 20 - 4
    prob, mask = read(res.probability)[0], read(res.mask)[0]
    assert np.isnan(prob[64:192, 0:128]).all() and (mask[64:192, 0:128] == 255).all()
    assert np.isnan(prob[0:64, 0:63]).all() and np.isfinite(prob[0:64, 63]).all()
    assert np.isfinite(prob[raw != 0]).all() and (mask[raw != 0] != 255).all()


def test_cli_predict_takes_precision_threads_and_no_optimise(toy, in_tmp):
    # Nothing imported from test_cli: several packages have a test_cli module, and in one
    # pytest process the name resolves to whichever was imported first.
    from mars_core.cli import main

    fast = ["--set", "trainer.epochs=2", "--set", "data.n_train=16"]
    assert main(["run", "toy", *fast, "--set", "tracking.enabled=true"]) == 0
    data = np.random.default_rng(0).normal(0, 0.3, size=(2, 40, 52)).astype("float32")
    data[:, 10:20, 12:30] += 1.0
    scene_path = write_tif(in_tmp / "scene.tif", data)
    # By version: a short run may be degenerate, and then it is never the champion.
    base = ["predict", "toy", "--model", "models:/mars-toy/1", "--input", str(scene_path), "--tile", "16"]
    assert main([*base, "--output", str(in_tmp / "bad.tif"), "--precision", "float16"]) == 2
    assert not any(p.name.startswith("bad") or ".partial" in p.name for p in in_tmp.iterdir())
    threads = torch.get_num_threads()
    try:
        assert main([*base, "--output", str(in_tmp / "a.tif"), "--threads", "1", "--no-optimise",
                     "--probability", "float32"]) == 0
        assert torch.get_num_threads() == 1
        assert main([*base, "--output", str(in_tmp / "b.tif"), "--precision", "bfloat16",
                     "--probability", "float32"]) == 0
    finally:
        torch.set_num_threads(threads)
    diff = np.abs(read(in_tmp / "a.prob.tif")[0] - read(in_tmp / "b.prob.tif")[0])
    assert np.nanmax(diff) < 0.02
