"""``mars-core icepatch ...``: commands this package adds to the core CLI (heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Ice patches in HiRISE: per-observation verdicts, decision threshold, class balance.",
                  no_args_is_help=True)
console = Console()
# User mistakes raise mars_core.errors.MarsError, which the core CLI reports (one line, exit 2).


@app.command()
def verdicts(
    model: str = typer.Option(..., "--model", help="models:/mars-icepatch@champion, runs:/ID/model or a directory"),
    data: Path = typer.Option(..., "--data", help="chip folder: labels.csv + chips/"),
    out: Path = typer.Option(Path("icepatch-verdicts"), "--out", help="output directory"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace existing outputs"),
    settings: list[str] = typer.Option([], "--set", help="model.KEY=VALUE, an eval-time setting of the stored "
                                       "model, e.g. 'model.tta_scales=[1.0]' (one scale: about 5x faster)"),
) -> None:
    """Verdict per observation (good / hard / bad) from its chips' probabilities; CSV, JSON, PNG montage."""
    from mars_core.cli.classify_command import with_model_settings
    from mars_core.tracking.model_io import load_model
    from mars_icepatch.folder import folder_verdicts

    loaded = with_model_settings(load_model(model), settings, "icepatch verdicts")
    res = folder_verdicts(loaded.model, loaded.cfg, data, out, overwrite)
    table = Table(title=f"icepatch verdicts: {data}")
    for col in ("observation", "chips", "icy", "mean p", "verdict", "ice labels"):
        table.add_column(col)
    for o, v in res["observations"].items():
        table.add_row(o, str(v["n_chunks"]), str(v["icy_chunks"]), f"{v['mean_p']:.3f}", v["verdict"],
                      str(v["ice_labels"]))
    console.print(table)
    console.print(f"chip accuracy {res['chip_accuracy']:.3f}, balanced {res['chip_balanced_accuracy']:.3f}; "
                  f"hot pixels repaired: {res['hot_pixels_repaired']}")
    console.print(f"outputs: {out / 'chips.csv'}, {out / 'verdicts.json'}, {out / 'montage.png'}")


@app.command()
def calibrate(
    model: str = typer.Option(..., "--model", help="models:/mars-icepatch@champion, runs:/ID/model or a directory"),
    data: Path = typer.Option(..., "--data", help="the chip folder the model was trained on (labels.csv + chips/)"),
    out: Path = typer.Option(..., "--out", help="new model directory (must not exist)"),
    split: str = typer.Option("val", "--split", help="split the threshold is chosen on (never test)"),
) -> None:
    """Choose the decision threshold on the validation chips; save a copy of the model carrying it."""
    from mars_icepatch.calibrate import calibrate_to_dir

    info = calibrate_to_dir(model, data, out, split)
    console.print(f"threshold {info['threshold']:.4f} chosen on {info['split']} ({info['chips']} chips, "
                  f"{info['ice']} ice, {info['observations']} observations); model saved to {out}")


@app.command()
def ensemble(
    model: list[str] = typer.Option(..., "--model", help="a trained icepatch model (repeat: at least two), e.g. "
                                    "models:/mars-icepatch/1 or runs:/ID/model"),
    out: Path = typer.Option(None, "--out", help="new model directory (must not exist)"),
    register: bool = typer.Option(False, "--register", help="log the ensemble into a new run of the icepatch "
                                  "experiment and register a version (never moved to champion)"),
) -> None:
    """Average independently trained models (e.g. runs with different trainer.seed) into one model."""
    from mars_icepatch.ensemble import combine_and_save

    info = combine_and_save(model, out, register)
    where = [f"saved to {out}"] if out is not None else []
    if register:
        where.append(f"registered as {info['model_uri']} (run {info['run_id']}; {info['champion_reason']})")
    console.print(f"ensemble of {info['members']} models ({', '.join(info['models'])}) {'; '.join(where)}; "
                  "decision threshold 0.5 (icepatch calibrate can choose one)")


@app.command()
def balance(
    data: Path = typer.Option(None, "--data", help="chip folder (default: the bundled sample)"),
    seed: int = typer.Option(0, "--seed"),
    folds: int = typer.Option(None, "--folds", help="k-fold by observation"),
    fold: int = typer.Option(0, "--fold"),
) -> None:
    """Chips and observations per class in each split (split by observation)."""
    from mars_icepatch.chips import HiriseChips

    src = HiriseChips(str(data) if data else None, seed=seed, folds=folds, fold=fold)
    table = Table(title=f"hirise-chips: {src.root}")
    for col in ("split", "chips", "ice", "no_ice", "observations"):
        table.add_column(col, justify="right")
    for s, v in src.class_balance().items():
        table.add_row(s, *(str(v[k]) for k in ("chips", "ice", "no_ice", "observations")))
    console.print(table)
