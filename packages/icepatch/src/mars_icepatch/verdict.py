"""Per-image verdicts from chunk probabilities (the icepatch paper's rules, configurable).

With ``icy`` = chunks with p >= ``icy_threshold`` (0.6), ``n`` = classified chunks and
``m`` = their mean p; "majority" = more than half of the chunks icy (icy > n / 2):

* good: majority and m > ``good_mean`` (0.6); or no majority and m > ``good_mean_minority`` (0.2);
* hard: majority and ``hard_low`` (0.4) <= m <= ``hard_high`` (0.6); or no majority, more than
  ``hard_min_icy`` (1) icy chunk(s) and m >= ``hard_mean_minority`` (0.01);
* bad: everything else (e.g. a majority with 0.3 < m < 0.4, which the paper leaves open).

Where the paper is ambiguous (boundaries) the reading is: "good" is tested first, so a mean
of exactly 0.6 with a majority is "hard" (0.4-0.6 inclusive) and not "good" (> 0.6); "more
than one icy chunk" is icy >= 2. Skipped chunks (black centre, no valid pixels) count in
neither ``n`` nor ``icy``; an image without a classified chunk has no verdict (an error).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from mars_core.errors import MarsError

VERDICTS = ("good", "hard", "bad")


@dataclass(frozen=True)
class VerdictRules:
    icy_threshold: float = 0.6
    good_mean: float = 0.6
    good_mean_minority: float = 0.2
    hard_low: float = 0.4
    hard_high: float = 0.6
    hard_min_icy: int = 1
    hard_mean_minority: float = 0.01

    @classmethod
    def from_dict(cls, params: dict[str, Any] | None) -> VerdictRules:
        params = dict(params or {})
        allowed = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise MarsError(f"unknown verdict setting(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        return cls(**params)


def verdict_of(probabilities: list[float], rules: VerdictRules | None = None) -> dict[str, Any]:
    """The verdict and the figures it was decided on, for one image's chunk probabilities."""
    r = rules or VerdictRules()
    n = len(probabilities)
    if n == 0:
        raise MarsError("no chunk could be classified (all black, no-data or filtered): no verdict")
    icy = sum(1 for p in probabilities if p >= r.icy_threshold)
    mean = sum(probabilities) / n
    majority = icy > n / 2
    if (majority and mean > r.good_mean) or (not majority and mean > r.good_mean_minority):
        verdict = "good"
        rule = "majority icy, mean > good_mean" if majority else "minority icy, mean > good_mean_minority"
    elif majority and r.hard_low <= mean <= r.hard_high:
        verdict, rule = "hard", "majority icy, hard_low <= mean <= hard_high"
    elif not majority and icy > r.hard_min_icy and mean >= r.hard_mean_minority:
        verdict, rule = "hard", "minority icy, icy > hard_min_icy, mean >= hard_mean_minority"
    else:
        verdict, rule = "bad", "none of the good/hard rules"
    return {"verdict": verdict, "rule": rule, "n_chunks": n, "icy_chunks": icy, "mean_p": round(mean, 6),
            "icy_fraction": round(icy / n, 6)}


def scene_verdict(records: list[dict[str, Any]], classes: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """Scene summariser for ``mars-core predict icepatch`` (``TaskSpec.scene_summariser``)."""
    rules = VerdictRules.from_dict(params)
    done = [r for r in records if not r["skipped"]]
    out = verdict_of([float(r["p"]) for r in done], rules)
    hot = [r for r in done if r.get("hot_pixels")]
    out["hot_pixels"] = sum(int(r["hot_pixels"]) for r in hot)
    out["chunks_with_hot_pixels"] = len(hot)
    out["rules"] = asdict(rules)
    return out
