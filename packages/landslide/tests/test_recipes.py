"""Recipe components of issue 12: the Lovász-hinge loss, stochastic depth and dropout of the
baselines, and the ``ensemble`` model (one module holding every member)."""

from __future__ import annotations

import pytest
import torch

from mars_core import plugins
from mars_core.errors import MarsError
from mars_core.masking import IGNORE
from mars_landslide.losses import lovasz, lovasz_grad
from mars_landslide.models.ensemble import Ensemble, ensemble
from mars_landslide.plugin import MODEL_FACTORIES


def test_lovasz_hinge_hand_computed() -> None:
    # logits (2, -1, 0.5, -3), labels (1, 0, 0, 1): hinge errors 1 - z*(2y-1) = (-1, 0, 1.5, 4);
    # sorted 4 (y=1), 1.5 (0), 0 (0), -1 (1); P = 2; J = 1 - (P - cumsum y)/(P + cumsum(1-y))
    # = (1/2, 2/3, 3/4, 1); g = (1/2, 1/6, 1/12, 1/4); loss = 4*1/2 + 1.5*1/6 = 2.25.
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0]).view(1, 1, 2, 2)
    assert lovasz()(logits, target).item() == pytest.approx(2.25)
    g = lovasz_grad(torch.tensor([1.0, 0.0, 0.0, 1.0]))
    torch.testing.assert_close(g, torch.tensor([0.5, 1 / 6, 1 / 12, 0.25]))


def test_lovasz_ignores_255_and_rewards_correct_margins() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0, 9.0]).view(1, 1, 1, 5)
    target = torch.tensor([1.0, 0.0, 0.0, 1.0, IGNORE]).view(1, 1, 1, 5)
    assert lovasz()(logits, target).item() == pytest.approx(2.25)  # the ignored pixel counts for nothing
    good = torch.tensor([5.0, -5.0, -5.0, 5.0]).view(1, 1, 2, 2)
    assert lovasz()(good, target[..., :4].reshape(1, 1, 2, 2)).item() == 0.0
    logits = logits.clone().requires_grad_(True)
    lovasz()(logits, target).backward()
    assert logits.grad is not None and logits.grad[0, 0, 0, 4] == 0
    per_image = lovasz(per_image=True)(torch.stack([good[0], good[0]]), torch.ones(2, 1, 2, 2))
    assert per_image.item() > 0  # two of four pixels on the wrong side of the margin


def test_lovasz_is_a_registered_loss() -> None:
    reg = plugins.get_registries()
    assert reg.losses.entry("lovasz").owner.distribution == "mars-landslide"


def test_drop_path_and_dropout() -> None:
    m = MODEL_FACTORIES["segformer"](in_channels=7, drop_path=0.3)
    rates = [mod.drop_prob for mod in m.modules() if type(mod).__name__ == "DropPath"]
    assert rates and max(rates) == pytest.approx(0.3)
    default = MODEL_FACTORIES["segformer"](in_channels=7)
    assert max(mod.drop_prob for mod in default.modules() if type(mod).__name__ == "DropPath") == pytest.approx(0.1)
    with pytest.raises(MarsError, match="has no stochastic depth"):
        MODEL_FACTORIES["pspnet"](in_channels=7, drop_path=0.1)
    with pytest.raises(MarsError, match="model.dropout"):
        MODEL_FACTORIES["pspnet"](in_channels=7, dropout=1.5)
    d = MODEL_FACTORIES["pspnet"](in_channels=7, dropout=0.5, encoder_depth=3).train()
    x = torch.randn(1, 7, 32, 32)
    assert not torch.equal(d(x), d(x))  # dropout active in training
    d.eval()
    assert torch.equal(d(x), d(x))


class _Const(torch.nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.value.expand(image.shape[0], 1, *image.shape[-2:])


def test_ensemble_averages_member_probabilities() -> None:
    ens = Ensemble([_Const(0.0), _Const(2.0), _Const(-1.0)])
    out = ens(torch.zeros(2, 7, 4, 4))
    expected = torch.tensor([0.0, 2.0, -1.0]).sigmoid().mean()
    torch.testing.assert_close(out.sigmoid(), expected.expand(2, 1, 4, 4))


def test_ensemble_factory_builds_every_member_in_one_state_dict() -> None:
    ens = ensemble(members=["pspnet", {"name": "pspnet", "encoder_depth": 3}], in_channels=4)
    keys = ens.state_dict().keys()
    assert any(k.startswith("members.0.") for k in keys) and any(k.startswith("members.1.") for k in keys)
    assert ens(torch.randn(1, 4, 64, 64)).shape == (1, 1, 64, 64)
    for bad, msg in ((["ensemble"], "unknown member model"), (["nope"], "unknown member model"),
                     ([], "non-empty list"), ("segformer", "non-empty list"),
                     ([{"encoder_depth": 3}], r"members\[0\] must be"),
                     ([{"name": "pspnet", "wings": 2}], r"members\[0\] \(pspnet\)")):
        with pytest.raises(MarsError, match=msg):
            ensemble(members=bad)  # type: ignore[arg-type]
