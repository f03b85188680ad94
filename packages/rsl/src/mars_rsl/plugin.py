"""Plugin module of mars-rsl: registers the RSL task through mars-core's hooks.

Loaded on every ``mars-core`` start, so it imports no torch: components are registered as
"module:attr" strings that mars-core imports on first use.
"""

from __future__ import annotations

from pathlib import Path

from mars_core import hookimpl
from mars_core.tasks import TaskKind, TaskSpec

TASK_YAML = Path(__file__).with_name("rsl.yaml")


@hookimpl
def register_datasources(register) -> None:  # type: ignore[no-untyped-def]
    register("rsl-series", "mars_rsl.data:rsl_series",
             description="T>=2 coregistered dates per site (GeoTIFF), RSL change/presence masks, split by site "
                         "(root None: SYNTHETIC sample)")


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    register("siamese-unet-sa", "mars_rsl.models:siamese_unet_sa",
             description="Siamese U-Net with spatial attention over T dates (RSL paper)")


@hookimpl
def register_metrics(register) -> None:  # type: ignore[no-untyped-def]
    register("rsl", "mars_rsl.metrics:RSLMetric",
             description="sensitivity, specificity, FDR, balanced accuracy per pixel and per lineae event")


@hookimpl
def register_tasks(register) -> None:  # type: ignore[no-untyped-def]
    register(TaskSpec(name="rsl", kind=TaskKind.CHANGE_DETECTION, default_config=TASK_YAML,
                      distribution="mars-rsl",
                      description="recurring slope lineae over HiRISE time series (Siamese U-Net + spatial attention)"))


@hookimpl
def register_commands(register) -> None:  # type: ignore[no-untyped-def]
    from mars_rsl.cli import app

    register("rsl", app, description="HiRISE archive crawler, tie-point coregistration, SYNTHETIC RSL series")
