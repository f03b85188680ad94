"""Round 2, item 1: a robust per-scene stretch that makes 8-, 10- and 12-bit products agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from icefrag_testutil import write_tif

from mars_core.errors import MarsError
from mars_icefrag.data.pairs import IcefragPairs
from mars_icefrag.data.pds import read_label
from mars_icefrag.synthetic import generate_pair

RDR_LABEL = """PDS_VERSION_ID = PDS3
OBJECT = IMAGE
  SAMPLE_BITS = 16
  SAMPLE_BIT_MASK = 2#0000001111111111#
  CORE_NULL = 0
  CORE_LOW_REPR_SATURATION = 1
  CORE_LOW_INSTR_SATURATION = 2
  CORE_HIGH_REPR_SATURATION = 1023
  CORE_HIGH_INSTR_SATURATION = 1022
END_OBJECT = IMAGE
END
"""


def _write_depth(root: Path, t1: np.ndarray, t2: np.ndarray, top: int, dtype: type) -> Path:
    """The same scene (floats in [0, 1]) quantised to DN 0..top (one scene key, 'a')."""
    for role, v in (("t1", t1), ("t2", t2)):
        write_tif(root / role / f"a_{role}.tif", np.round(v * top).astype(dtype))
    return root


def _inputs(root: Path, **params) -> torch.Tensor:  # type: ignore[no-untyped-def]
    src = IcefragPairs(str(root), tile=128, split={"train": ["a"]}, normalisation="robust", **params)
    item = src.dataset("train")[0]
    return torch.stack([item["image1"], item["image2"]])


def test_same_scene_at_8_10_and_12_bits_gives_the_same_model_input(tmp_path: Path) -> None:
    pair = generate_pair(size=128, seed=3)
    t1, t2 = pair.t1.astype(np.float64), pair.t2.astype(np.float64)
    lo, hi = float(min(t1.min(), t2.min())), float(max(t1.max(), t2.max()))
    a1, a2 = (t1 - lo) / (hi - lo), (t2 - lo) / (hi - lo)
    x8 = _inputs(_write_depth(tmp_path / "b8", a1, a2, 255, np.uint8))
    x10 = _inputs(_write_depth(tmp_path / "b10", a1, a2, 1023, np.uint16), saturated=[1, 2, 1022, 1023])
    x12 = _inputs(_write_depth(tmp_path / "b12", a1, a2, 4095, np.uint16))
    spread = float(x12.max() - x12.min())
    assert spread > 1.0  # a real stretch to about [0, 1] happened
    for other in (x8, x10):
        assert float((other - x12).abs().max()) < 0.01 * spread
    # the fixed rule of round 1 (bit_depth 12) does NOT survive a 10-bit product: the check can fail
    fixed10 = IcefragPairs(str(tmp_path / "b10"), tile=128, split={"train": ["a"]}, bit_depth=12).dataset("train")[0]
    assert float((fixed10["image1"] - x12[0]).abs().max()) > 0.1 * spread


def test_pds_label_sets_nodata_and_saturation_in_the_contract(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for role in ("t1", "t2"):
        dn = rng.integers(100, 900, (128, 128)).astype(np.uint16)
        dn[:8] = 0  # null strip
        dn[8:40] = 1023  # a saturated block that would pull p_high to 1023
        write_tif(tmp_path / role / f"a_{role}.tif", dn)
        (tmp_path / role / f"a_{role}.LBL").write_text(RDR_LABEL)
    values = read_label(tmp_path / "t1" / "a_t1.LBL")
    assert values.bits == 10 and values.null == 0 and values.saturated == (1, 2, 1022, 1023)
    src = IcefragPairs(str(tmp_path), tile=128, split={"train": ["a"]}, normalisation="robust")
    contract = src.input_contract()
    assert contract.nodata == 0 and contract.normalisation.method == "robust"
    assert contract.normalisation.saturated == [1, 2, 1022, 1023]
    item = src.dataset("train")[0]
    # null pixels are ignored, the others are not
    assert (item["mask"][..., :8, :] == 255).all() and (item["mask"][..., 40:, :] != 255).all()
    body = item["image1"][0, 40:]
    assert -0.1 < float(body.min()) < 0.1 and 0.9 < float(body.max()) < 1.1  # stretched on the valid DN only
    # without the label the saturated block defines p_high: the valid DN are squeezed
    for role in ("t1", "t2"):
        (tmp_path / role / f"a_{role}.LBL").unlink()
    squeezed = IcefragPairs(str(tmp_path), tile=128, split={"train": ["a"]}, normalisation="robust")
    assert float(squeezed.dataset("train")[0]["image1"][0, 40:].max()) < 0.9


def test_conflicting_nodata_and_bad_method_are_user_errors(tmp_path: Path) -> None:
    for role in ("t1", "t2"):
        write_tif(tmp_path / role / f"a_{role}.tif", np.full((64, 64), 500, np.uint16))
        (tmp_path / role / f"a_{role}.LBL").write_text(RDR_LABEL)
    with pytest.raises(MarsError, match="CORE_NULL"):
        IcefragPairs(str(tmp_path), tile=64, split={"train": ["a"]}, normalisation="robust", nodata=7)
    with pytest.raises(MarsError, match="normalisation"):
        IcefragPairs(str(tmp_path), tile=64, split={"train": ["a"]}, normalisation="zscore")
