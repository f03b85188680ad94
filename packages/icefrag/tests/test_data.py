"""The pair data source: matching, label maps, grid checks, fixed normalisation, split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from icefrag_testutil import write_tif

from mars_core.errors import MarsError
from mars_icefrag.data.pairs import IcefragPairs, scene_key

OK = {"label_map": {1: 1, 255: 0}, "tile": 32, "overlap": 0.5}


def test_scene_key_strips_roles() -> None:
    assert scene_key("ESP_011_pre.tif") == scene_key("ESP_011_POST.tif") == scene_key("esp-011-mask.TIF") == "esp_011"
    assert scene_key("x_ESP_5_y.tif", key_regex=r"(ESP_\d+)") == "ESP_5"


def test_matching_label_map_and_tiles(pair_root: Path) -> None:
    src = IcefragPairs(str(pair_root), split={"train": ["esp_000"], "val": ["esp_001"], "test": ["esp_002"]}, **OK)
    assert src.splits() == ["train", "val", "test", "all"]
    ds = src.dataset("train")
    assert len(ds) == 9  # 64 px, tile 32, stride 16 -> 3 x 3 (training tiles overlap)
    assert len(src.dataset("val")) == len(src.dataset("test")) == 4  # evaluation tiles never overlap
    assert len(src.dataset("all")) == 12
    item = ds[0]
    assert item["image1"].shape == (1, 32, 32) and item["image1"].dtype == torch.float32
    assert set(item["mask"].unique().tolist()) == {0.0, 1.0}  # 1 -> fragment, 255 -> background
    assert float(item["mask"].sum()) == 100


def test_unexpected_mask_value_is_an_error(pair_root: Path) -> None:
    src = IcefragPairs(str(pair_root), tile=32)  # default map {0: 0, 1: 1} does not know 255
    with pytest.raises(MarsError, match="255.*label_map"):
        src.dataset(src.splits()[0])[0]


def test_missing_partner_is_an_error(pair_root: Path) -> None:
    (pair_root / "t2" / "ESP_002_post.tif").unlink()
    with pytest.raises(MarsError, match="esp_002"):
        IcefragPairs(str(pair_root), **OK)


def test_shifted_transform_is_an_error(pair_root: Path) -> None:
    arr = np.zeros((64, 64), np.uint16)
    write_tif(pair_root / "t2" / "ESP_001_post.tif", arr, origin=(1000.0 + 0.25 * 0.5, 2000.0))  # half a pixel
    with pytest.raises(MarsError, match="not on one grid"):
        IcefragPairs(str(pair_root), **OK)


def test_tiny_shift_within_tolerance_is_accepted(pair_root: Path) -> None:
    arr = np.zeros((64, 64), np.uint16)
    write_tif(pair_root / "t2" / "ESP_001_post.tif", arr, origin=(1000.0 + 0.25 * 0.001, 2000.0))
    IcefragPairs(str(pair_root), **OK)


def test_different_crs_is_an_error(pair_root: Path) -> None:
    arr = np.zeros((64, 64), np.uint16)
    write_tif(pair_root / "t2" / "ESP_001_post.tif", arr, crs="EPSG:32633")
    with pytest.raises(MarsError, match="different CRS"):
        IcefragPairs(str(pair_root), **OK)


def test_normalisation_is_fixed_not_per_tile(pair_root: Path) -> None:
    arr = np.full((64, 64), 100, np.uint16)
    arr[:32] = 200
    write_tif(pair_root / "t1" / "ESP_000_pre.tif", arr)
    src = IcefragPairs(str(pair_root), split={"train": ["esp_000"]}, bit_depth=12, **OK)
    ds = src.dataset("train")
    # Tile 0 is uniform 200: a per-tile normaliser would give 0 or NaN; ours gives 200/4095.
    torch.testing.assert_close(ds[0]["image1"], torch.full((1, 32, 32), 200 / 4095))
    c = src.input_contract()
    assert c.n_inputs == 2 and c.bands == ["hirise_red"] and c.normalisation.std == [4095.0]
    arr[0, 0] = 5000
    write_tif(pair_root / "t1" / "ESP_000_pre.tif", arr)
    with pytest.raises(MarsError, match="above dn_max"):
        IcefragPairs(str(pair_root), split={"train": ["esp_000"]}, bit_depth=12, **OK).dataset("train")[0]


def test_split_by_scene_is_disjoint_and_deterministic() -> None:
    a = IcefragPairs(bit_depth=12)
    b = IcefragPairs(bit_depth=12)
    keys = a.split_keys()
    assert keys == b.split_keys()
    assert set(keys) == {"train", "val", "test"} and all(keys.values())
    flat = [k for v in keys.values() for k in v]
    assert len(flat) == len(set(flat)) == 5


def test_group_regex_keeps_regions_together(pair_root: Path) -> None:
    src = IcefragPairs(str(pair_root), group_regex=r"(esp)_", **OK)
    keys = src.split_keys()
    assert sorted(len(v) for v in keys.values()) == [0, 0, 3]


@pytest.mark.parametrize("bad", ["hflip", "vflip", "rotate", "rot90", "RandomHorizontalFlip"])
def test_flips_and_rotations_are_refused(bad: str) -> None:
    with pytest.raises(MarsError, match="shadow"):
        IcefragPairs(bit_depth=12, augment=["perspective", bad])


def test_flips_refused_through_the_config(tmp_path: Path) -> None:
    from mars_core import plugins
    from mars_core.registry import call_factory

    plugins.reset()
    factory = plugins.get_registries().datasources.get("icefrag-pairs")
    with pytest.raises(MarsError, match="shadow"):
        call_factory("data source", "icefrag-pairs", factory, {"root": None, "bit_depth": 12, "augment": ["hflip"]})


def test_augmentation_applies_same_geometry_to_both_dates() -> None:
    src = IcefragPairs(bit_depth=12, tile=64, augment=["perspective", "distortion", "brightness", "contrast"],
                       augment_params={"p": 1.0, "date_jitter": 0.0})
    aug = src.train_augmentation()
    ds = src.dataset("train")
    b = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ("image1", "mask")}
    b["image2"] = b["image1"].clone()
    out = aug(b)
    torch.testing.assert_close(out["image1"], out["image2"])
    assert not torch.equal(out["image1"], b["image1"])
    assert set(out["mask"].unique().tolist()) <= {0.0, 1.0}


# -- positive_fraction: over-sampling of training tiles with change --------------------------
def _change_fraction(ds) -> float:
    flags = ds.tile_has_change()
    return sum(flags) / len(flags)


def test_positive_fraction_reweights_train_only() -> None:
    split = {"train": ["synth_s000", "synth_s001", "synth_s002"], "val": ["synth_s003"], "test": ["synth_s004"]}
    plain = IcefragPairs(bit_depth=12, tile=64, split=split)
    src = IcefragPairs(bit_depth=12, tile=64, split=split, positive_fraction=0.5)
    natural = _change_fraction(plain.dataset("train"))
    assert 0 < natural < 0.3  # the SYNTHETIC sample is mostly background
    train = src.dataset("train")
    assert abs(_change_fraction(train) - 0.5) < 0.02
    # Every original tile is still there, negatives exactly once, positives repeated.
    assert set(train.items) == set(plain.dataset("train").items) and train.n_unique == len(plain.dataset("train"))
    assert train.items == src.dataset("train").items  # deterministic
    for split_name in ("val", "test"):  # never re-weighted
        assert src.dataset(split_name).items == plain.dataset(split_name).items


def test_positive_fraction_counts(pair_root: Path) -> None:
    # Mask rows/cols 10..19 of a 64-px scene: 4 of 9 tiles (32 px, stride 16) hold change.
    split = {"train": ["esp_000", "esp_001"], "test": ["esp_002"]}
    src = IcefragPairs(str(pair_root), split=split, positive_fraction=0.75, **OK)
    ds = src.dataset("train")
    flags = ds.tile_has_change()
    assert flags.count(False) == 10 and flags.count(True) == 30  # 8 positives x 3.75 -> 30 entries: 30/40
    assert len(src.dataset("test")) == 4  # not re-weighted, and not overlapping
    # Already above the requested fraction: unchanged.
    low = IcefragPairs(str(pair_root), split=split, positive_fraction=0.2, **OK).dataset("train")
    assert len(low) == 18


def test_positive_fraction_validation(pair_root: Path) -> None:
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="positive_fraction"):
            IcefragPairs(str(pair_root), positive_fraction=bad, **OK)
    for p in (pair_root / "mask").iterdir():
        write_tif(p, np.full((64, 64), 255, np.uint8))
    src = IcefragPairs(str(pair_root), split={"train": ["esp_000"]}, positive_fraction=0.5, **OK)
    with pytest.raises(MarsError, match="no training tile contains change"):
        src.dataset("train")
