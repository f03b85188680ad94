"""Test-time scales (model.tta_scales): the input looked at resampled by several factors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mars_core.cli import main
from mars_core.errors import MarsError
from mars_icepatch.models import xception_small


def _net(**kwargs):
    torch.manual_seed(0)
    return xception_small(widths=[16, 32], stem=8, **kwargs).eval()


def _resampled(x: torch.Tensor, n: int) -> torch.Tensor:  # by hand, not through the shared helper
    return F.interpolate(x, size=(n, n), mode="bilinear", antialias=True, align_corners=False)


def _stripes(b: int, side: int) -> torch.Tensor:
    """Chips of stripes, each of its own period: structure whose look depends on the scale."""
    pos = torch.arange(side, dtype=torch.float32)
    period = torch.linspace(3.0, 12.0, b)[:, None, None, None]
    return 4.0 * torch.sin(2 * torch.pi * (pos[None, None, None, :] + 0.5 * pos[None, None, :, None]) / period)


def test_scales_combine_the_logits_of_each_resampled_input():
    x = _stripes(6, 48)
    one = _net()
    with torch.no_grad():
        per_scale = torch.stack([one(x), one(_resampled(x, 36)), one(_resampled(x, 72))])  # 1, 0.75, 1.5
        mean = _net(tta_scales=[1.0, 0.75, 1.5], tta_scale_rule="mean")(x)
        best = _net(tta_scales=[1.0, 0.75, 1.5], tta_scale_rule="max")(x)
    assert torch.allclose(mean, per_scale.mean(0), atol=1e-5)
    margins = per_scale[..., 1] - per_scale[..., 0]  # [scales, B]
    assert torch.allclose(best[:, 1] - best[:, 0], margins.max(0).values, atol=1e-5)
    # each chip keeps one scale's logits whole, and the scales really differ for these inputs
    assert all(any(torch.allclose(best[i], per_scale[s, i], atol=1e-5) for s in range(3)) for i in range(6))
    assert not torch.allclose(per_scale[0], per_scale[1], atol=1e-3)
    assert (best.softmax(1)[:, 1] >= per_scale.softmax(2)[..., 1].max(0).values - 1e-5).all()


def test_the_default_is_one_scale_and_training_ignores_the_scales():
    x = torch.rand(2, 1, 40, 40)
    with torch.no_grad():
        assert torch.equal(_net()(x), _net(tta_scales=[1.0])(x))
        # with D4 TTA, each scale is itself the mean of the 8 views
        d4 = _net(tta=True, tta_scales=[1.0, 1.25], tta_scale_rule="mean")(x)
        plain = _net(tta=True)
        assert torch.allclose(d4, (plain(x) + plain(_resampled(x, 50))) / 2, atol=1e-5)
    torch.manual_seed(1)
    a = _net(tta_scales=[0.5, 2.0]).train()(x)
    torch.manual_seed(1)
    b = _net().train()(x)
    assert torch.equal(a, b)  # dropout draws alike: the same single pass


@pytest.mark.parametrize("kwargs, message", [
    ({"tta_scales": []}, "tta_scales"),
    ({"tta_scales": [1.0, 8.0]}, "tta_scales"),
    ({"tta_scale_rule": "median"}, "tta_scale_rule"),
    ({"tta_scales": [1.0, 1.5], "num_classes": 3}, "two classes"),
])
def test_bad_scale_settings_are_refused(kwargs, message):
    with pytest.raises(MarsError, match=message):
        xception_small(**kwargs)


def test_a_bad_scale_setting_stops_a_run_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "icepatch", "--set", "model.tta_scales=[0.1]", "--set", "tracking.enabled=false",
                 "--set", "trainer.epochs=1", "--set", "trainer.progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert "tta_scales" in err and len(err.splitlines()) == 1 and not any(tmp_path.iterdir())
