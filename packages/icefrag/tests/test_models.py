"""Shapes and gradients of every registered model on small inputs, and the AAM formula."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mars_core import plugins
from mars_icefrag.models import BIT, AugmentedAttention, SiameseResNet50

MODELS = ["siamese-resnet50-aam", "siamese-resnet50", "fc-ef", "fc-siam-conc", "fc-siam-diff", "bit"]


@pytest.mark.parametrize("name", MODELS)
def test_shape_and_gradient(name: str) -> None:
    plugins.reset()
    model = plugins.get_registries().models.get(name)()
    torch.manual_seed(0)
    x1, x2 = torch.randn(2, 1, 64, 64), torch.randn(2, 1, 64, 64)
    out = model(x1, x2)
    assert out.shape == (2, 1, 64, 64)
    out.mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_log_odds_equals_two_class_softmax() -> None:
    model = SiameseResNet50(attention=True).eval()
    x1, x2 = torch.randn(1, 1, 64, 64), torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        z = model.two_class_logits(x1, x2)
        out = model(x1, x2)
    torch.testing.assert_close(out.sigmoid(), z.softmax(dim=1)[:, 1:2], atol=1e-6, rtol=1e-5)


def test_proposed_model_is_a_resnet50_siamese() -> None:
    model = SiameseResNet50()
    assert type(model.encoder).__name__ == "ResNet"
    assert [len(model.encoder.layer1), len(model.encoder.layer2), len(model.encoder.layer3),
            len(model.encoder.layer4)] == [3, 4, 6, 3]
    # T2 stops after four stages; weights are shared (one encoder).
    feats = model._stages(torch.randn(1, 1, 64, 64), 4)
    assert [f.shape[1] for f in feats] == [64, 256, 512, 1024]


def test_bit_matches_the_papers_size_and_layout() -> None:
    model = BIT()
    n = sum(p.numel() for p in model.parameters())
    # Chen et al. 2021, Table (ResNet18 S4 BIT): 3.55 M parameters.
    assert abs(n / 3.55e6 - 1) < 0.05, n
    assert len(model.encoder) == 1 and len(model.decoder) == 8
    f = model.features(torch.randn(1, 1, 64, 64))
    assert f.shape == (1, 32, 16, 16)  # stride 4, 32 channels
    # Each token is a convex combination of pixel features (softmax over pixels).
    t = model.tokenize(f)
    assert t.shape == (1, 4, 32)
    assert bool((t <= f.amax((2, 3))[:, None] + 1e-5).all() and (t >= f.amin((2, 3))[:, None] - 1e-5).all())


def test_bit_sees_both_dates_and_refuses_bad_sizes() -> None:
    model = BIT().eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        same = model(x, x)
        other = model(x, torch.randn(1, 1, 64, 64))
    assert not torch.allclose(same, other)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.randn(1, 1, 60, 60), torch.randn(1, 1, 60, 60))


def _set_identity_h1(h1, scale: float = 1.0) -> None:
    """conv = identity*scale, BN in eval with mean 0, var 1, weight 1, bias 0 (eps 0)."""
    c = h1.conv.weight.shape[0]
    with torch.no_grad():
        h1.conv.weight.copy_(torch.eye(c).view(c, c, 1, 1) * scale)
        h1.bn.running_mean.zero_()
        h1.bn.running_var.fill_(1.0)
        h1.bn.weight.fill_(1.0)
        h1.bn.bias.zero_()
    h1.bn.eps = 0.0


@pytest.mark.parametrize(("gain", "scale"), [("one", 1.0), ("channels", 2.0)])
def test_aam_matches_formula_on_hand_set_example(gain: str, scale: float) -> None:
    aam = AugmentedAttention(2, 2, gain=gain).eval()
    _set_identity_h1(aam.h1_f)
    _set_identity_h1(aam.h1_g)
    _set_identity_h1(aam.h1_d, scale=2.0)
    with torch.no_grad():
        aam.h2.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0]]).view(2, 2, 1, 1))
        aam.h2.bias.zero_()
    f = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[0.0, 2.0], [2.0, 0.0]]]])  # G(f) = (4, 1)
    d = torch.tensor([[[[1.0, -1.0], [0.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]]])  # G(d) = (1, 2)
    # By hand: H1(G(f)) + H1(G(d)) = relu(4,1) + relu(1,2) = (5, 3); H2 -> (5, 9);
    # softmax -> (e^5, e^9)/(e^5+e^9), times the gain (1, or C = 2 channels);
    # H1(d) = relu(2 d) = [[2,0],[0,8]], [[4,4],[4,4]].
    s = torch.tensor([5.0, 9.0]).softmax(0) * scale
    h1d = torch.stack([torch.tensor([[2.0, 0.0], [0.0, 8.0]]), torch.full((2, 2), 4.0)])
    expected = f[0] + h1d * s.view(2, 1, 1)
    out = aam(f, d)
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(aam.attention(f, d).flatten(), s)
    # Also the generic formula with F ops, to tie the module to its docstring.
    v = torch.softmax(aam.h2(F.relu(aam.h1_f.conv(f.mean((2, 3), keepdim=True)))
                             + F.relu(aam.h1_g.conv(d.mean((2, 3), keepdim=True)))), dim=1) * scale
    torch.testing.assert_close(out, f + F.relu(aam.h1_d.conv(d)) * v)


def test_aam_gain_is_validated() -> None:
    with pytest.raises(ValueError, match="gain must be one of"):
        AugmentedAttention(2, 2, gain="unit")


def test_aam_trains_with_batch_of_one() -> None:
    aam = AugmentedAttention(4, 8).train()
    out = aam(torch.randn(1, 4, 8, 8), torch.randn(1, 8, 8, 8))
    out.sum().backward()


def test_pretrained_from_local_file(tmp_path) -> None:
    import timm

    ref = timm.create_model("resnet50", pretrained=False, num_classes=0, in_chans=3)
    path = tmp_path / "r50.pth"
    torch.save(ref.state_dict(), path)
    model = SiameseResNet50(in_channels=1, pretrained=str(path))
    torch.testing.assert_close(model.encoder.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    torch.testing.assert_close(model.encoder.conv1.weight, ref.conv1.weight.sum(1, keepdim=True))


@pytest.mark.parametrize("name", MODELS)
def test_same_logits_on_channels_last_input(name: str) -> None:
    # Whole-scene prediction runs models on NHWC tensors (mars_core.raster): every model of
    # this task must accept them and give the same answer, or prediction falls back to the slower layout.
    plugins.reset()
    model = plugins.get_registries().models.get(name)().eval()
    torch.manual_seed(0)
    x1, x2 = torch.randn(2, 1, 64, 64), torch.randn(2, 1, 64, 64)
    with torch.inference_mode():
        nchw = model(x1, x2)
        model.to(memory_format=torch.channels_last)
        nhwc = model(*(x.contiguous(memory_format=torch.channels_last) for x in (x1, x2)))
    torch.testing.assert_close(nhwc, nchw, rtol=1e-4, atol=1e-4 * float(nchw.abs().max()))
