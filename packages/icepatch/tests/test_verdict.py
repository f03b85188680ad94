"""Verdict rules: every branch of the paper's rules, the boundaries, overrides."""

from __future__ import annotations

import pytest

from mars_core.errors import MarsError
from mars_icepatch.verdict import VerdictRules, scene_verdict, verdict_of

CASES = {
    # name: (probabilities, verdict)
    "good, majority icy, mean > 0.6": ([0.9, 0.8, 0.7, 0.1], "good"),
    "good, minority icy, mean > 0.2": ([0.9, 0.1, 0.1, 0.1], "good"),       # mean 0.3, 1 of 4 icy
    "hard, majority icy, mean in 0.4-0.6": ([0.6, 0.6, 0.6, 0.0], "hard"),  # mean 0.45
    "hard, majority icy, mean exactly 0.6": ([0.6, 0.6, 0.6], "hard"),     # not > 0.6
    "hard, minority, 2 icy, mean >= 0.01": ([0.6, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "hard"),  # 0.12
    "bad, minority, only 1 icy": ([0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "bad"),  # mean 0.06
    "bad, minority, 2 icy, mean < 0.01": ([0.6, 0.6] + [0.0] * 198, "bad"),  # mean 0.006
    "bad, majority icy, mean in (0.3, 0.4)": ([0.65, 0.65, 0.65, 0.0, 0.0], "bad"),  # 3 of 5 icy, mean 0.39
    "bad, nothing icy": ([0.1, 0.15, 0.05], "bad"),
    "half icy is not a majority": ([0.9, 0.9, 0.0, 0.0], "good"),           # minority rule, mean 0.45
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_branch(name):
    probs, expected = CASES[name]
    assert verdict_of(probs)["verdict"] == expected, verdict_of(probs)


def test_figures_and_thresholds_are_configurable():
    v = verdict_of([0.55, 0.55, 0.1])
    assert (v["icy_chunks"], v["n_chunks"], v["mean_p"]) == (0, 3, pytest.approx(0.4)) and v["verdict"] == "good"
    v = verdict_of([0.55, 0.55, 0.1], VerdictRules(icy_threshold=0.5))  # now 2 of 3 icy, mean 0.4
    assert v["icy_chunks"] == 2 and v["verdict"] == "hard"


def test_scene_summariser_ignores_skipped_chunks_and_counts_hot_pixels():
    recs = [{"skipped": False, "p": 0.9, "hot_pixels": 3}, {"skipped": True, "p": None, "reason": "black centre"},
            {"skipped": False, "p": 0.8, "hot_pixels": 0}]
    out = scene_verdict(recs, ["no_ice", "ice"], {"icy_threshold": 0.6})
    assert out["verdict"] == "good" and out["n_chunks"] == 2 and out["hot_pixels"] == 3
    assert out["chunks_with_hot_pixels"] == 1 and out["rules"]["icy_threshold"] == 0.6


def test_no_classified_chunk_and_unknown_rule_are_errors():
    with pytest.raises(MarsError, match="no chunk could be classified"):
        verdict_of([])
    with pytest.raises(MarsError, match="icy_treshold"):
        VerdictRules.from_dict({"icy_treshold": 0.5})
