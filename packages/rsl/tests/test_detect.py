"""SYNTHETIC RSL series, the rsl-series data source, siamese-unet-sa, metrics, and a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from mars_core.cli import main
from mars_core.errors import MarsError
from mars_rsl.data import RSLSeries, sample_root
from mars_rsl.metrics import RSLMetric, event_counts
from mars_rsl.models import SpatialAttention, siamese_unet_sa
from mars_rsl.synthetic import make_site, write_sites


def test_synthetic_lineae_grow_downslope_on_steep_terrain() -> None:
    site = make_site(np.random.default_rng(3), size=128, n_dates=4)
    area = site.rsl.reshape(4, -1).sum(1)
    assert (np.diff(area) >= 0).all() and area[-1] > area[0]  # they lengthen over the season
    assert site.change[0].sum() == 0
    np.testing.assert_array_equal(site.change[1:], (site.rsl[1:] == 1) & (site.rsl[:-1] == 0))
    assert site.slope[site.rsl[-1] == 1].mean() > 1.15 * site.slope.mean()  # on steeper slopes than the average
    # illumination differs between dates even where nothing changes
    still = site.rsl.max(0) == 0
    assert abs(float(site.images[0][still].mean()) - float(site.images[1][still].mean())) > 1


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rsl") / "sites"
    write_sites(out, n_sites=4, size=64, n_dates=3, seed=1)
    return out


def test_written_sites_say_synthetic_and_are_not_overwritten(sites: Path) -> None:
    with rasterio.open(sites / "site_000" / "d01.tif") as ds:
        assert ds.tags()["SYNTHETIC"] == "true" and "SYNTHETIC" in ds.descriptions[0]
        assert ds.tags()["ACQUISITION_DATE"] and "Mars" in ds.crs.to_wkt()
    assert json.loads((sites / "SYNTHETIC.json").read_text())["SYNTHETIC"] is True
    with pytest.raises(MarsError, match="not empty"):
        write_sites(sites, 1, 64, 2)


def test_series_source_gives_t_dates_and_the_newest_mask_split_by_site(sites: Path) -> None:
    src = RSLSeries(str(sites), dates=3, target="change", tile=64, split=[0.5, 0.25, 0.25])
    assert src.input_contract().n_inputs == 3
    parts = src.split_sites()
    assert sum(len(v) for v in parts.values()) == 4
    assert all(set(parts[a]).isdisjoint(parts[b]) for a in parts for b in parts if a < b)
    item = src.dataset("all")[0]
    assert {"image1", "image2", "image3", "times", "mask"} <= set(item)
    assert torch.isfinite(item["times"]).all() and (torch.diff(item["times"]) > 0).all()
    with rasterio.open(sites / "site_000" / "change_d02.tif") as ds:
        np.testing.assert_array_equal(item["mask"][0].numpy(), ds.read(1))
    with rasterio.open(sites / "site_000" / "d00.tif") as ds:
        np.testing.assert_allclose(item["image1"][0].numpy(), ds.read(1) / 1023.0, rtol=1e-5)
    two = RSLSeries(str(sites), dates=2, target="rsl", tile=64)
    assert len(two.windows) == 8  # 2 windows of consecutive dates per site
    with pytest.raises(MarsError, match="fewer than"):
        RSLSeries(str(sites), dates=4, tile=64)
    named = RSLSeries(str(sites), dates=2, tile=64,
                      split={"train": ["site_000", "site_001"], "val": ["site_002"], "test": ["site_003"]})
    assert named.split_sites() == {"train": ["site_000", "site_001"], "val": ["site_002"], "test": ["site_003"]}
    assert len(named.dataset("train")) == 4 and len(named.dataset("test")) == 2


def test_bundled_sample_is_synthetic() -> None:
    meta = json.loads((sample_root() / "SYNTHETIC.json").read_text())
    assert meta["SYNTHETIC"] is True and len(meta["sites"]) == 6


@pytest.mark.parametrize("t", [2, 3])
def test_model_takes_t_dates(t: int) -> None:
    torch.manual_seed(0)
    m = siamese_unet_sa(base=4).eval()
    x = [torch.rand(2, 1, 32, 32) for _ in range(t)]
    y = m(*x)
    assert y.shape == (2, 1, 32, 32)
    # the dates matter (not a single-image model) and the encoder is shared (Siamese)
    assert not torch.allclose(y, m(*([x[0]] * t)))
    with pytest.raises(ValueError):
        m(x[0])


def test_spatial_attention_is_a_map_in_0_1() -> None:
    sa = SpatialAttention()
    a = sa.attention(torch.randn(2, 8, 16, 16))
    assert a.shape == (2, 1, 16, 16) and (a > 0).all() and (a < 1).all()


def test_metric_by_hand() -> None:
    target = torch.zeros(1, 1, 10, 10)
    target[0, 0, 0, 0:5] = 1  # a lineae of 5 px
    target[0, 0, 9, 0:5] = 1  # another, missed
    target[0, 0, 5, 5] = 255  # ignored
    probs = torch.zeros(1, 1, 10, 10)
    probs[0, 0, 0, 0:4] = 0.9  # 4 of 5 found
    probs[0, 0, 5, 0:6] = 0.9  # a false streak of 5 counted px (+1 ignored)
    m = RSLMetric(min_size=3)
    m.update(probs, target)
    r = {k: float(v) for k, v in m.compute().items()}
    assert r["sensitivity"] == pytest.approx(4 / 10)
    assert r["specificity"] == pytest.approx(84 / 89)  # 99 counted - 10 positive = 89 negatives, 5 FP
    assert r["fdr"] == pytest.approx(5 / 9)
    assert r["balanced_accuracy"] == pytest.approx((0.4 + 84 / 89) / 2)
    assert r["event_sensitivity"] == pytest.approx(0.5) and r["event_fdr"] == pytest.approx(0.5)
    assert event_counts(np.zeros((4, 4), bool), np.zeros((4, 4), bool)) == (0, 0, 0, 0)


def test_run_and_predict_through_the_cli(sites: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MARS_CORE_PLUGINS", "rsl")
    rc = main(["run", "rsl", "--data", str(sites), "--set", "data.tile=64", "--set", "data.dates=3",
               "--set", "model.base=4", "--set", "trainer.epochs=1", "--set", "trainer.progress=false",
               "--set", "data.split=[0.5,0.25,0.25]", "--set", "tracking.sample_predictions=0",
               "--json", "run.json"])
    assert rc == 0
    res = json.loads((tmp_path / "run.json").read_text())
    keys = {"sensitivity", "specificity", "fdr", "balanced_accuracy", "event_sensitivity"}
    assert keys <= set(res["metrics"]["test"])
    d = sites / "site_001"
    rc = main(["predict", "rsl", "--model", res["model_uri"], "--input", str(d / "d00.tif"),
               "--input", str(d / "d01.tif"), "--input", str(d / "d02.tif"), "--output", str(tmp_path / "p.tif")])
    assert rc == 0
    with rasterio.open(tmp_path / "p.tif") as ds, rasterio.open(d / "d02.tif") as ref:
        assert ds.crs == ref.crs and ds.transform == ref.transform and ds.shape == ref.shape
    rc = main(["predict", "rsl", "--model", res["model_uri"], "--input", str(d / "d00.tif"),
               "--input", str(d / "d01.tif"), "--output", str(tmp_path / "q.tif")])
    assert rc == 2  # the model was trained on 3 dates
