"""The sweep's results: one row per trial, as a console table, a CSV, a PNG chart (logged
as artifacts of the sweep's MLflow run) and the ``--json`` summary."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mars_core.sweep.trial import ATTR_DEGENERATE, ATTR_ERROR, ATTR_MODEL, ATTR_RUN

if TYPE_CHECKING:
    import optuna
    from rich.table import Table


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Trials in number order; pruned duplicates (never trained) are left out."""
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        state = t.state.name
        if state == "PRUNED":
            continue
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        out.append({
            "trial": t.number, "state": state, "value": t.value, "params": dict(t.params),
            "run_id": t.user_attrs.get(ATTR_RUN), "model_uri": t.user_attrs.get(ATTR_MODEL),
            "error": t.user_attrs.get(ATTR_ERROR), "duration_s": duration,
            "degenerate": t.user_attrs.get(ATTR_DEGENERATE),
        })
    return out


def table(trials: list[dict[str, Any]], monitor: str, best: int | None, title: str) -> Table:
    from rich.table import Table

    keys = sorted({k for r in trials for k in r["params"]})
    tab = Table(title=title, caption="* best trial")
    for col in ("trial", *keys, monitor, "state", "mlflow run"):
        tab.add_column(col, overflow="fold")
    for r in trials:
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        state = r["state"] if not r["error"] else f"{r['state']}: {r['error'][:60]}"
        if r.get("degenerate"):
            state += " (degenerate)"
        tab.add_row(f"{r['trial']}{'*' if r['trial'] == best else ''}", *(_cell(r["params"].get(k, "-")) for k in keys),
                    value, state, (r["run_id"] or "-")[:12])
    return tab


def _cell(value: Any) -> str:
    """Sampled floats have 16 digits; four significant ones fit a column (the CSV keeps all)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_csv(trials: list[dict[str, Any]], monitor: str, path: Path) -> None:
    keys = sorted({k for r in trials for k in r["params"]})
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["trial", *keys, monitor, "state", "duration_s", "run_id", "model_uri", "error",
                         "degenerate"])
        for r in trials:
            writer.writerow([r["trial"], *(r["params"].get(k, "") for k in keys),
                             "" if r["value"] is None else r["value"], r["state"],
                             "" if r["duration_s"] is None else f"{r['duration_s']:.1f}",
                             r["run_id"] or "", r["model_uri"] or "", r["error"] or "", r.get("degenerate") or ""])


def write_chart(trials: list[dict[str, Any]], monitor: str, best: int | None, path: Path) -> None:
    """Monitored value per trial; failed trials as red crosses on the axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(trials) + 2), 3.5))
    try:
        ok = [r for r in trials if r["value"] is not None and math.isfinite(r["value"])]
        failed = [r for r in trials if r not in ok]
        ax.bar([str(r["trial"]) for r in ok], [r["value"] for r in ok],
               color=["tab:orange" if r["trial"] == best else "tab:blue" for r in ok])
        if failed:
            ax.scatter([str(r["trial"]) for r in failed], [0.0] * len(failed), marker="x", color="red",
                       label="failed")
            ax.legend()
        ax.set_xlabel("trial")
        ax.set_ylabel(monitor)
        ax.set_title(f"{monitor} per trial (best in orange)")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
