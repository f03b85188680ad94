"""``mars-core sweep``: hyper-parameter sweeps on Optuna (logic in :mod:`mars_core.sweep`).

Registered on the app by one line in :mod:`mars_core.cli.commands`. Optuna, MLflow and
torch are imported when the command runs, never when the CLI starts.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mars_core.cli.output import console, paths_table, write_json_atomic


def sweep(
    task: str = typer.Argument(..., help="Task name, as 'mars-core tasks' lists it."),
    grid: list[str] = typer.Option([], "--grid", help="KEY=V1,V2,...: every combination is a trial "
                                   "(Optuna GridSampler). Repeatable; values are YAML like --set."),
    ranges: list[str] = typer.Option([], "--range", help="KEY=LOW:HIGH[:log]: a numeric interval for "
                                     "Optuna's default sampler (integers if both bounds are). Repeatable."),
    choices: list[str] = typer.Option([], "--choice", help="KEY=A,B,...: a categorical choice for Optuna's "
                                      "default sampler. Repeatable."),
    n_trials: int | None = typer.Option(None, "--n-trials", min=1, help="Trials in the whole study "
                                        "(default: the grid's size, or 20)."),
    workers: int = typer.Option(1, "--workers", min=1, help="Local worker processes sharing the storage."),
    storage: str | None = typer.Option(None, "--storage", help="Optuna RDB URL shared by all workers "
                                       "(default: sqlite:///./optuna.db)."),
    study: str | None = typer.Option(None, "--study", help="Study name (default: derived from the command, "
                                     "so the same command resumes)."),
    seed: int | None = typer.Option(None, "--seed", help="Sampler seed."),
    data: Path | None = typer.Option(None, "--data", help="Dataset root; default: the task's bundled sample."),
    config: Path | None = typer.Option(None, "--config", help="YAML file merged over the task's defaults."),
    overrides: list[str] = typer.Option([], "--set", help="Override a key for every trial (repeatable)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the best trial and all trials as JSON."),
    worker: bool = typer.Option(False, "--worker", hidden=True, help="Run as a worker of an existing study."),
) -> None:
    """Sweep hyper-parameters: one MLflow child run per trial, the best model registered."""
    from mars_core.sweep.space import parse_space

    space = parse_space(grid, ranges, choices)  # syntax errors before any heavy import
    from mars_core.sweep.runner import SweepFailed, SweepOptions, run_sweep, run_worker

    opts = SweepOptions(task=task, space=space, data=data, config=config, overrides=list(overrides),
                        n_trials=n_trials, workers=workers, storage=storage, study=study, seed=seed,
                        raw_grid=list(grid), raw_ranges=list(ranges), raw_choices=list(choices))
    if worker:
        run_worker(opts)
        return
    result = run_sweep(opts)
    from mars_core.sweep.report import table

    best = result["best"]
    console.print(table(result["trials"], result["monitor"], best["trial"] if best else None,
                        title=f"{task} sweep {result['study']}"))
    rows = [("study", f"{result['study']} ({result['storage']})"), ("mlflow sweep run", result["parent_run_id"])]
    if best is not None:
        rows.append(("best trial", f"{best['trial']}: {result['monitor']}={best['value']:.4f} {best['params']}"))
        if best.get("registered_model_uri"):
            rows.append(("model", best["registered_model_uri"]))
    if json_out is not None:
        write_json_atomic(json_out, result)
        rows.append(("results", str(json_out)))
    console.print(paths_table(rows))
    if best is None:
        errors = [t["error"] for t in result["trials"] if t.get("error")]
        raise SweepFailed(f"all {len(result['trials'])} trials failed"
                          + (f"; first error: {errors[0]}" if errors else ""))
