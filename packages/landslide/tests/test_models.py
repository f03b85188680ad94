"""Every registered model: shapes, a backward pass; MarsLS-Net sizes vs Table 3; ablations."""

from __future__ import annotations

import pytest
import torch

from mars_landslide.models.marslsnet import PAPER_PARAMS_M, marslsnet
from mars_landslide.plugin import MODEL_FACTORIES


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("size,kernel", [(s, k) for s in "SML" for k in (3, 4, 5)])
def test_marslsnet_builds_all_configs(size: str, kernel: int) -> None:
    m = marslsnet(size=size, kernel=kernel)
    assert n_params(m) > 0
    key = f"{size}-{kernel}"
    if key in PAPER_PARAMS_M:
        paper = PAPER_PARAMS_M[key] * 1e6
        assert abs(n_params(m) - paper) / paper < 0.15, (key, n_params(m), paper)


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    params = {"size": "S", "kernel": 3} if name == "marslsnet" else {}
    model = MODEL_FACTORIES[name](in_channels=7, **params)
    x = torch.randn(2, 7, 64, 64)
    y = model(x)
    assert y.shape == (2, 1, 64, 64)
    y.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_baselines_default_no_weights() -> None:
    import inspect

    for name, f in MODEL_FACTORIES.items():
        if name != "marslsnet":
            assert inspect.signature(f).parameters["encoder_weights"].default is None


def test_marslsnet_default_is_L5_and_full_size_forward() -> None:
    m = marslsnet()
    assert abs(n_params(m) - 0.9835e6) / 0.9835e6 < 0.15
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 7, 128, 128)).shape == (1, 1, 128, 128)


def test_ablations() -> None:
    full = marslsnet(size="S", kernel=3)
    no_pe = marslsnet(size="S", kernel=3, use_convpe=False)
    no_att = marslsnet(size="S", kernel=3, use_mhsa=False)
    none = marslsnet(size="S", kernel=3, use_convpe=False, use_mhsa=False)
    assert not any("pe1" in n for n, _ in no_pe.named_parameters())
    assert not any("mhsa" in n for n, _ in no_att.named_parameters())
    assert not any("pe1" in n or "mhsa" in n for n, _ in none.named_parameters())
    assert n_params(full) > n_params(no_pe) > n_params(none)
    assert n_params(full) > n_params(no_att) > n_params(none)
    x = torch.randn(1, 7, 32, 32)
    for m in (no_pe, no_att, none):
        assert m(x).shape == (1, 1, 32, 32)


def test_full_resolution_attention_matches_shape() -> None:
    m = marslsnet(size="S", kernel=3, attn_size=None)
    assert m(torch.randn(1, 7, 16, 16)).shape == (1, 1, 16, 16)


def test_bad_params() -> None:
    with pytest.raises(ValueError, match="size"):
        marslsnet(size="XL")
    with pytest.raises(ValueError, match="kernel"):
        marslsnet(kernel=7)


@pytest.mark.parametrize("name", sorted(MODEL_FACTORIES))
def test_same_logits_on_channels_last_input(name: str) -> None:
    # Whole-scene prediction runs models on NHWC tensors (mars_core.raster): every model of
    # this task must accept them and give the same answer, or prediction falls back to the slower layout.
    torch.manual_seed(0)
    params = {"size": "S", "kernel": 3} if name == "marslsnet" else {}
    model = MODEL_FACTORIES[name](in_channels=7, **params).eval()
    x = torch.randn(2, 7, 64, 64)
    with torch.inference_mode():
        nchw = model(x)
        model.to(memory_format=torch.channels_last)
        nhwc = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(nhwc, nchw, rtol=1e-4, atol=1e-4 * float(nchw.abs().max()))
