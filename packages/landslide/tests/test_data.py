"""The mmls data source: real layout, stray files, bad input, channel selection, sample."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mars_core.data import DataSource
from mars_core.errors import MarsError
from mars_landslide.mmls import TRAIN_MEAN, TRAIN_STD, MMLSSource, find_pairs, resolve_channels


def write_image(path: Path, arr: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, arr)


def test_real_validation_partition(mmls_root: Path) -> None:
    src = MMLSSource(str(mmls_root))
    assert isinstance(src, DataSource)
    assert {"train", "val"} <= set(src.splits())
    ds = src.dataset("val")
    assert len(ds) == 31
    s = ds[0]
    assert s["image"].shape == (7, 128, 128) and s["image"].dtype == torch.float32
    assert s["mask"].shape == (1, 128, 128)
    assert set(torch.unique(s["mask"]).tolist()) <= {0.0, 1.0}
    frac = ds.masks.mean().item()
    assert 0.3 < frac < 0.5  # README: about 0.40 on validation


def test_real_train_skips_stray_files_with_warning(mmls_root: Path) -> None:
    with pytest.warns(UserWarning, match=r"images/test.*masks/test"):
        pairs = find_pairs(mmls_root / "train_partition")
    assert len(pairs) == 275
    assert all(p.name.startswith("Image_") for p, _ in pairs)


def test_stray_file_in_tmp_layout(tiny_root: Path) -> None:
    (tiny_root / "train_partition" / "images" / "test").write_bytes(b"\n")
    with pytest.warns(UserWarning, match="non-TIFF.*images/test"):
        ds = MMLSSource(str(tiny_root)).dataset("train")
    assert len(ds) == 2


def test_test_partition_is_accepted(tiny_root: Path) -> None:
    import shutil

    shutil.copytree(tiny_root / "validation_partition", tiny_root / "test_partition")
    src = MMLSSource(str(tiny_root))
    assert src.splits() == ["train", "val", "test"]
    assert len(src.dataset("test")) == 1


def _expect(tiny_root: Path, match: str) -> None:
    with pytest.raises(MarsError, match=match):
        MMLSSource(str(tiny_root)).dataset("train")


def test_wrong_channel_count(tiny_root: Path) -> None:
    bad = tiny_root / "train_partition" / "images" / "Image_patch_0_0.tif"
    write_image(bad, np.zeros((128, 128, 5), np.float32))
    _expect(tiny_root, r"Image_patch_0_0\.tif.*5 channel")


def test_nan_patch(tiny_root: Path) -> None:
    arr = np.zeros((128, 128, 7), np.float32)
    arr[3, 4, 2] = np.nan
    write_image(tiny_root / "train_partition" / "images" / "Image_patch_0_1.tif", arr)
    _expect(tiny_root, r"Image_patch_0_1\.tif.*NaN")


def test_mask_values(tiny_root: Path) -> None:
    write_image(tiny_root / "train_partition" / "masks" / "Mask_patch_0_0.tif", np.full((128, 128), 2, np.float32))
    _expect(tiny_root, r"Mask_patch_0_0\.tif.*0 or 1.*2")


def test_wrong_shape(tiny_root: Path) -> None:
    write_image(tiny_root / "train_partition" / "images" / "Image_patch_0_0.tif", np.zeros((64, 64, 7), np.float32))
    _expect(tiny_root, r"Image_patch_0_0\.tif.*shape")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(MarsError, match="no MMLS partitions"):
        MMLSSource(str(tmp_path))
    (tmp_path / "train_partition" / "images").mkdir(parents=True)
    (tmp_path / "train_partition" / "masks").mkdir(parents=True)
    with pytest.raises(MarsError, match=r"train_partition/images.*no MMLS image"):
        MMLSSource(str(tmp_path)).dataset("train")


def test_missing_mask(tiny_root: Path) -> None:
    (tiny_root / "train_partition" / "masks" / "Mask_patch_0_1.tif").unlink()
    _expect(tiny_root, r"Image_patch_0_1\.tif.*no matching mask")


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(MarsError, match="not a directory"):
        MMLSSource(str(tmp_path / "nope"))


def test_channel_selection_and_contract(tiny_root: Path) -> None:
    assert resolve_channels("all") == list(range(7))
    assert resolve_channels(["rgb", "dem"]) == [0, 1, 2, 3]
    assert resolve_channels("slope,thermal_inertia") == [5, 4]
    assert resolve_channels([6, "3"]) == [6, 3]
    for bad in (["rgb", "red"], ["nir"], [9], []):
        with pytest.raises(MarsError, match="data.channels"):
            resolve_channels(bad)
    src = MMLSSource(str(tiny_root), channels=["dem", "gray"])
    c = src.input_contract()
    assert c.bands == ["dem", "gray"] and c.tile_size == 128
    assert c.normalisation.mean == [TRAIN_MEAN[3], TRAIN_MEAN[6]]
    s = src.dataset("train")[0]
    assert s["image"].shape == (2, 128, 128)
    import tifffile

    raw = tifffile.imread(tiny_root / "train_partition" / "images" / "Image_patch_0_0.tif")
    expect = (raw[..., 3] - TRAIN_MEAN[3]) / TRAIN_STD[3]
    assert np.allclose(s["image"][0].numpy(), expect, atol=1e-5)


def test_bundled_sample() -> None:
    src = MMLSSource(None)
    assert src.splits() == ["train", "val"]
    tr, va = src.dataset("train"), src.dataset("val")
    assert len(tr) == 18 and len(va) == 8
    assert tr[0]["image"].shape == (7, 128, 128)
    assert set(torch.unique(tr.masks).tolist()) == {0.0, 1.0}
    assert abs(tr.images.mean().item()) < 0.5
    with pytest.raises(MarsError, match="split 'test' not available"):
        src.dataset("test")
    path = Path(__file__).parents[1] / "src" / "mars_landslide" / "data"
    assert (path / "mmls_sample.npz").stat().st_size < 1.5e6
    notice = (path / "NOTICE.md").read_text()
    assert "MIT" in notice and "964f1ef4183d1fd9cd4c87080f4063cd576832b3" in notice


def test_preview_panels() -> None:
    src = MMLSSource(None)
    s = dict(src.dataset("val")[0])
    s["probs"] = torch.rand(1, 128, 128)
    titles = [t for t, _ in src.preview(s)]
    assert titles == ["RGB", "DEM", "truth", "prediction"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        panels = dict(src.preview(s))
    assert panels["RGB"].shape == (128, 128, 3)


def test_train_crop_param() -> None:
    assert MMLSSource(None, train_crop=64).train_augmentation().crop == 64
    with pytest.raises(MarsError, match="train_crop"):
        MMLSSource(None, train_crop=512)


# --------------------------------------------------------------------------- grid-position pairing


def _write_pair(root: Path, part: str, image_name: str, mask_name: str, value: float, fg: bool) -> None:
    """An image whose every pixel is ``value`` and a mask that is all 1 (``fg``) or all 0."""
    for sub, name, arr in (("images", image_name, np.full((128, 128, 7), value, np.float32)),
                           ("masks", mask_name, np.full((128, 128), float(fg), np.float32))):
        (root / part / sub).mkdir(parents=True, exist_ok=True)
        write_image(root / part / sub / name, arr)


def test_published_test_partition_names(tiny_root: Path) -> None:
    # The published test_partition writes ImageT_patch_R_C / MaskT_patch_R_C.
    _write_pair(tiny_root, "test_partition", "ImageT_patch_12_3.tif", "MaskT_patch_12_3.tif", 0.2, True)
    _write_pair(tiny_root, "test_partition", "ImageT_patch_9_40.tif", "MaskT_patch_9_40.tif", 0.8, False)
    src = MMLSSource(str(tiny_root))
    assert src.splits() == ["train", "val", "test"]
    ds = src.dataset("test")
    assert len(ds) == 2
    assert sorted(ds.positions) == [(9, 40), (12, 3)]
    assert "'ImageT'" in ds.description and "'MaskT'" in ds.description
    for i, pos in enumerate(ds.positions):
        assert ds[i]["mask"].mean().item() == (1.0 if pos == (12, 3) else 0.0)


def test_pairs_by_grid_position_not_by_file_order(tmp_path: Path) -> None:
    # Sorted by name the two folders list their files in opposite orders ("ImageT_" < "Image_"
    # but "MaskT_" < "Mask_" pairs 1_1 with 2_2): pairing by order would swap the masks.
    _write_pair(tmp_path, "train_partition", "ImageT_patch_1_1.tif", "Mask_patch_1_1.tif", 0.25, True)
    _write_pair(tmp_path, "train_partition", "Image_patch_2_2.tif", "MaskT_patch_2_2.tif", 0.75, False)
    ds = MMLSSource(str(tmp_path)).dataset("train")
    assert ds.positions == [(1, 1), (2, 2)]
    for i, (value, fg) in enumerate(((0.25, 1.0), (0.75, 0.0))):
        assert abs(ds[i]["image"][0, 0, 0].item() - (value - TRAIN_MEAN[0]) / TRAIN_STD[0]) < 1e-5
        assert ds[i]["mask"].mean().item() == fg
    assert "'Image', 'ImageT'" in ds.description and "'Mask', 'MaskT'" in ds.description


def test_mask_without_image(tiny_root: Path) -> None:
    write_image(tiny_root / "train_partition" / "masks" / "MaskT_patch_7_8.tif", np.zeros((128, 128), np.float32))
    _expect(tiny_root, r"MaskT_patch_7_8\.tif.*no matching image.*7_8")


def test_two_files_at_one_grid_position(tiny_root: Path) -> None:
    write_image(tiny_root / "train_partition" / "images" / "ImageT_patch_0_1.tif", np.zeros((128, 128, 7), np.float32))
    _expect(tiny_root, r"patch_0_1\.tif and .*patch_0_1\.tif: two images at grid position 0_1")


def test_tiff_without_grid_position(tiny_root: Path) -> None:
    write_image(tiny_root / "train_partition" / "images" / "Image_extra.tif", np.zeros((128, 128, 7), np.float32))
    _expect(tiny_root, r"Image_extra\.tif.*patch_R_C")


def test_stray_file_in_test_partition(tiny_root: Path) -> None:
    _write_pair(tiny_root, "test_partition", "ImageT_patch_1_2.tif", "MaskT_patch_1_2.tif", 0.5, True)
    (tiny_root / "test_partition" / "masks" / "test").write_bytes(b"\n")
    with pytest.warns(UserWarning, match=r"non-TIFF.*test_partition/masks/test"):
        ds = MMLSSource(str(tiny_root)).dataset("test")
    assert len(ds) == 1 and ds.positions == [(1, 2)]


def test_grid_positions_of_real_and_sample_patches(mmls_root: Path) -> None:
    from mars_landslide.mmls import grid_position

    assert grid_position("ImageT_patch_12_30.tif") == (12, 30)
    assert grid_position("Image_patch_3_7") == (3, 7)
    assert grid_position("Image_7.tif") is None
    ds = MMLSSource(str(mmls_root)).dataset("val")
    assert len(set(ds.positions)) == 31
    assert all(ds.positions[i] == grid_position(n) for i, n in enumerate(ds.names))
    sample = MMLSSource(None).dataset("train")
    assert all(p is not None for p in sample.positions) and len(set(sample.positions)) == 18


def test_augmentation_can_be_switched_off() -> None:
    # The paper trains without augmentation (configs/marslsnet-paper.yaml).
    assert MMLSSource(None, augment=False).train_augmentation() is None
    assert MMLSSource(None).train_augmentation() is not None
    with pytest.raises(MarsError, match="train_crop needs data.augment"):
        MMLSSource(None, augment=False, train_crop=64)
