"""A sweep from start to end: check the space, open the study and the sweep's run, let
the workers train, then report and register the best trial.

``--workers N`` starts N worker processes (this same program with ``--worker``) that
share the study's storage; Optuna hands each its trials. Workers on other machines are
the same command pointed at one ``--storage`` URL.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mars_core.errors import MarsError
from mars_core.sweep import report
from mars_core.sweep.space import SearchSpace, override
from mars_core.sweep.study import ATTR_PARENT, default_storage, load_study, open_storage, parent_run, work
from mars_core.sweep.trial import Base

ATTR_REGISTERED = "registered_trial"
ENV_THREADS = "MARS_CORE_SWEEP_THREADS"


class SweepFailed(MarsError):
    """Every trial failed: nothing to register. Exit 1, like a failed ``run``."""

    exit_code = 1


@dataclass
class SweepOptions:
    task: str
    space: SearchSpace
    data: Path | None = None
    config: Path | None = None
    overrides: list[str] = field(default_factory=list)
    n_trials: int | None = None
    workers: int = 1
    storage: str | None = None
    study: str | None = None
    seed: int | None = None
    raw_grid: list[str] = field(default_factory=list)
    raw_ranges: list[str] = field(default_factory=list)
    raw_choices: list[str] = field(default_factory=list)


def study_name(opts: SweepOptions) -> str:
    """Derived from what defines the sweep, so rerunning the same command resumes it."""
    key = json.dumps([opts.task, opts.space.describe(), opts.overrides, str(opts.config or ""),
                      str(opts.data or "")], sort_keys=True, default=str)
    return f"{opts.task}-sweep-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _check_keys(opts: SweepOptions, default_config: Path) -> Any:
    """Every key must be a config key: one value per key that loads is enough (a bad
    value at one grid point is that trial's failure, not a usage error)."""
    from mars_core.config import load_task_config

    data = str(opts.data) if opts.data is not None else None
    base = load_task_config(default_config, opts.config, opts.overrides, data)
    for key in opts.space.keys:
        candidates = opts.space.grid.get(key) or opts.space.choices.get(key) or [opts.space.ranges[key].low]
        first_error: MarsError | None = None
        for value in candidates:
            try:
                load_task_config(default_config, opts.config, [*opts.overrides, override(key, value)], data)
                break
            except MarsError as exc:
                first_error = first_error or exc
        else:
            raise MarsError(f"sweep key {key}: {first_error}")
    return base


def _self_command() -> list[str]:
    """How this program was started (``mars-core``, ``python -m mars_core.cli``, or a
    script that registers extra plugins first), so workers see the same plugins."""
    orig = list(getattr(sys, "orig_argv", []) or [])
    n_args = len(sys.argv) - 1
    if "sweep" in sys.argv[1:] and orig and len(orig) > n_args and orig[len(orig) - n_args:] == sys.argv[1:]:
        return orig[: len(orig) - n_args]
    return [sys.executable, "-m", "mars_core.cli"]


def _worker_args(opts: SweepOptions, storage: str, name: str) -> list[str]:
    args = ["sweep", opts.task, "--storage", storage, "--study", name, "--worker"]
    for flag, values in (("--grid", opts.raw_grid), ("--range", opts.raw_ranges), ("--choice", opts.raw_choices),
                         ("--set", opts.overrides)):
        for v in values:
            args += [flag, v]
    if opts.data is not None:
        args += ["--data", str(opts.data)]
    if opts.config is not None:
        args += ["--config", str(opts.config)]
    if opts.n_trials is not None:
        args += ["--n-trials", str(opts.n_trials)]
    if opts.seed is not None:
        args += ["--seed", str(opts.seed)]
    return args


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _prepare(opts: SweepOptions) -> tuple[Any, Any, Base]:
    from mars_core.plugins import get_registries

    spec = get_registries().task(opts.task)
    if opts.data is not None and not opts.data.exists():
        raise MarsError(f"--data path does not exist: {opts.data}")
    base_cfg = _check_keys(opts, Path(spec.default_config))
    storage_url = opts.storage or default_storage()
    name = opts.study or study_name(opts)
    storage = open_storage(storage_url)
    direction = "maximize" if base_cfg.trainer.mode == "max" else "minimize"
    study = load_study(name, storage, opts.space, direction, opts.seed)
    base = Base(task=opts.task, experiment=base_cfg.tracking.experiment or spec.name,
                default_config=Path(spec.default_config), user_config=opts.config, overrides=list(opts.overrides),
                data=str(opts.data) if opts.data is not None else None, study=name,
                parent_run_id=study.user_attrs.get(ATTR_PARENT),
                checkpoint_base=Path(base_cfg.trainer.checkpoint_dir) / opts.task / f"sweep-{name}")
    opts.storage, opts.study = storage_url, name
    return base_cfg, study, base


def run_worker(opts: SweepOptions) -> None:
    """A worker process: train trials of an existing study until none is left."""
    threads = int(os.environ.get(ENV_THREADS, "0") or 0)
    if threads > 0:
        import torch

        torch.set_num_threads(threads)
    _, study, base = _prepare(opts)
    work(study, opts.space, base, opts.n_trials)


def run_sweep(opts: SweepOptions) -> dict[str, Any]:
    """The coordinator: returns the ``--json`` payload (and prints nothing)."""
    base_cfg, study, base = _prepare(opts)
    base.parent_run_id = parent_run(study, base.experiment, opts.task)
    if opts.workers <= 1:
        work(study, opts.space, base, opts.n_trials)
    else:
        _run_workers(opts)
    return _finish(opts, base_cfg, study, base)


def _run_workers(opts: SweepOptions) -> None:
    assert opts.storage is not None and opts.study is not None
    threads = threads_per_worker(opts.workers)
    env = {**os.environ, ENV_THREADS: str(threads), "OMP_NUM_THREADS": str(threads)}
    cmd = [*_self_command(), *_worker_args(opts, opts.storage, opts.study)]
    procs = [subprocess.Popen(cmd, env=env) for _ in range(opts.workers)]
    try:
        codes = [p.wait() for p in procs]
    except BaseException:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    if all(c != 0 for c in codes):
        raise MarsError(f"all {len(codes)} sweep workers failed (exit codes {codes}); see their output above")


def pick_best(done: list[dict[str, Any]], mode: str) -> dict[str, Any] | None:
    """The best completed trial. A degenerate one (constant output, one class everywhere)
    wins only when every trial is degenerate, and is then registered as such: never made
    the champion."""
    sound = [r for r in done if not r.get("degenerate")] or done
    return (max if mode == "max" else min)(sound, key=lambda r: r["value"]) if sound else None


def _finish(opts: SweepOptions, base_cfg: Any, study: Any, base: Base) -> dict[str, Any]:
    from mars_core.tracking import registry_ops
    from mars_core.tracking.store import connect

    trials = report.rows(study)
    done = [r for r in trials if r["state"] == "COMPLETE"]
    monitor, mode = base_cfg.trainer.monitor, base_cfg.trainer.mode
    best = pick_best(done, mode)
    store = connect()
    parent = base.parent_run_id
    assert parent is not None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sweep"
        folder.mkdir()
        report.write_csv(trials, monitor, folder / "trials.csv")
        report.write_chart(trials, monitor, best["trial"] if best else None, folder / "trials.png")
        store.client.log_artifacts(parent, str(folder), "sweep")
    registered: dict[str, Any] = {}
    if best is not None and best["model_uri"]:
        cfg = base.config(best["params"], ["tracking.enabled=true"])
        if cfg.tracking.register_model and study.user_attrs.get(ATTR_REGISTERED) != best["trial"]:
            info = SimpleNamespace(model_uri=best["model_uri"],
                                   model_id=best["model_uri"].removeprefix("models:/") or None)
            registered = registry_ops.register(store, cfg, info, best["run_id"], monitor=monitor, mode=mode,
                                               best_value=best["value"], degenerate=best.get("degenerate"))
            study.set_user_attr(ATTR_REGISTERED, best["trial"])
            study.set_user_attr("registered_model_uri",
                                f"models:/{registered['registered_model']}/{registered['model_version']}")
        store.client.set_tag(parent, "mars.sweep.best_trial", str(best["trial"]))
        store.client.log_metric(parent, f"best/{monitor}", float(best["value"]))
    store.client.set_terminated(parent, "FINISHED" if best is not None else "FAILED")
    model_uri = study.user_attrs.get("registered_model_uri") if best is not None else None
    return {
        "study": study.study_name, "storage": opts.storage, "parent_run_id": parent, "monitor": monitor,
        "mode": mode, "best": None if best is None else {**best, "registered_model_uri": model_uri},
        "registered": registered, "trials": trials,
    }
