"""Plugin module of mars-landslide: data source ``mmls``, MarsLS-Net + baselines, task ``landslide``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mars_core import hookimpl
from mars_core.tasks import TaskKind, TaskSpec
from mars_landslide.mmls import MMLSSource
from mars_landslide.models.baselines import BASELINES, DESCRIPTIONS
from mars_landslide.models.marslsnet import marslsnet

TASK_YAML = Path(__file__).with_name("landslide.yaml")

MODEL_FACTORIES: dict[str, Callable[..., Any]] = {"marslsnet": marslsnet, **BASELINES}


@hookimpl
def register_datasources(register) -> None:  # type: ignore[no-untyped-def]
    register("mmls", MMLSSource,
             description="MMLS Martian landslides (7-channel 128x128 TIFF); root=None -> bundled sample")


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    register("marslsnet", marslsnet,
             description="MarsLS-Net (stacked PEN-Attention blocks; size S/M/L, kernel 3/4/5; ablations)")
    for name, factory in BASELINES.items():
        register(name, factory, description=DESCRIPTIONS[name])


@hookimpl
def register_tasks(register) -> None:  # type: ignore[no-untyped-def]
    register(TaskSpec(
        name="landslide",
        kind=TaskKind.SEGMENTATION,
        default_config=TASK_YAML,
        distribution="mars-landslide",
        description="Martian landslide segmentation on MMLS (Valles Marineris, 7 modalities)",
    ))
