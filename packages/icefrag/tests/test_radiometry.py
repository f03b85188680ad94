"""Optional radiometric matching of T2 to T1 (issue 13, item 1): the methods, the model
wrapper, and the rebuild path that `mars-core predict` takes."""

from __future__ import annotations

import pytest
import torch

from mars_core import plugins
from mars_core.config import load_task_config
from mars_core.data import InputContract, Normalisation
from mars_core.errors import MarsError
from mars_core.tasks import TaskKind
from mars_core.tracking.model_io import build_model
from mars_icefrag.models import FCSiam, fc_siam_diff
from mars_icefrag.radiometry import MatchedPair, match


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    t1 = torch.rand(2, 1, 64, 64, generator=g)
    t2 = 0.6 * t1 + 0.25  # other exposure, same ground
    t2[..., 10:18, 10:18] += 0.8  # a change: 64 px of 4096
    return t1, t2


def test_linear_match_removes_the_exposure_change_and_keeps_the_real_one() -> None:
    t1, t2 = _pair()
    out = match(t1, t2, "linear")
    diff = (out - t1).abs()
    off = torch.ones_like(diff, dtype=torch.bool)
    off[..., 10:18, 10:18] = False
    assert float(diff[off].max()) < 1e-4  # the fit ignored the changed block
    assert float(diff[..., 10:18, 10:18].min()) > 1.0  # 0.8 / 0.6: the change is kept, in T1 units
    assert float((t2 - t1).abs()[off].mean()) > 0.1  # without matching the dates differ everywhere


def test_histogram_match_gives_t2_the_values_of_t1_in_t2_order() -> None:
    t1, t2 = _pair()
    out = match(t1, t2, "histogram")
    torch.testing.assert_close(out.flatten(2).sort(-1).values, t1.flatten(2).sort(-1).values)
    # rank order of T2 is kept: out, read in T2's order, never decreases
    along = torch.gather(out.flatten(2), -1, t2.flatten(2).argsort(-1))
    assert bool((along.diff(dim=-1) >= 0).all())
    assert torch.equal(match(t1, t2, "none"), t2)


def test_wrapped_model_sees_t2_matched_and_unknown_method_is_refused() -> None:
    torch.manual_seed(0)
    plain = fc_siam_diff()
    assert isinstance(plain, FCSiam)  # "none" keeps the bare network (old weights keep their names)
    torch.manual_seed(0)
    matched = fc_siam_diff(radiometric_match="linear").eval()
    assert isinstance(matched, MatchedPair)
    t1, _ = _pair()
    same_ground = 0.6 * t1 + 0.25
    with torch.no_grad():
        torch.testing.assert_close(matched(t1, same_ground), matched(t1, t1), atol=1e-4, rtol=0)
        assert float((plain.eval()(t1, same_ground) - plain(t1, t1)).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="radiometric_match"):
        fc_siam_diff(radiometric_match="zscore")


def test_stored_config_rebuilds_the_matching_model_as_predict_does() -> None:
    plugins.reset()
    spec = plugins.get_registries().task("icefrag")
    cfg = load_task_config(spec.default_config, overrides=["model={name: fc-siam-diff, radiometric_match: histogram}"])
    contract = InputContract(kind=TaskKind.CHANGE_DETECTION, bands=["hirise_red"], n_inputs=2,
                             normalisation=Normalisation.robust(1), tile_size=64)
    model = build_model(cfg, contract)
    assert isinstance(model, MatchedPair) and model.method == "histogram"
    bad = load_task_config(spec.default_config, overrides=["model={name: fc-siam-diff, radiometric_match: zscore}"])
    with pytest.raises((MarsError, ValueError), match="radiometric_match"):
        build_model(bad, contract)
