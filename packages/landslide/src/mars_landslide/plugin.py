"""Plugin module of mars-landslide: data source ``mmls``, MarsLS-Net + baselines, task ``landslide``.

Loaded on every ``mars-core`` start, so it imports no torch: components are registered as
"module:attr" strings that mars-core imports on first use.
"""

from __future__ import annotations

from pathlib import Path

from mars_core import hookimpl
from mars_core.registry import LazyFactory, lazy
from mars_core.tasks import TaskKind, TaskSpec
from mars_landslide.models.catalog import DESCRIPTIONS

TASK_YAML = Path(__file__).with_name("landslide.yaml")

MODEL_TARGETS: dict[str, str] = {
    "marslsnet": "mars_landslide.models.marslsnet:marslsnet",
    **{name: f"mars_landslide.models.baselines:{name}" for name in DESCRIPTIONS},
    "ensemble": "mars_landslide.models.ensemble:ensemble",
}
# Callable like the factories themselves (benchmarks and tests use them); import on first call.
MODEL_FACTORIES: dict[str, LazyFactory] = {name: lazy(target) for name, target in MODEL_TARGETS.items()}


@hookimpl
def register_datasources(register) -> None:  # type: ignore[no-untyped-def]
    register("mmls", "mars_landslide.mmls:MMLSSource",
             description="MMLS Martian landslides (7-channel 128x128 TIFF); root=None -> bundled sample")


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    register("marslsnet", MODEL_TARGETS["marslsnet"],
             description="MarsLS-Net (stacked PEN-Attention blocks; size S/M/L, kernel 3/4/5; ablations)")
    for name, description in DESCRIPTIONS.items():
        register(name, MODEL_TARGETS[name], description=description)
    register("ensemble", MODEL_TARGETS["ensemble"],
             description="several landslide models in one module (mean probability); model.members=[...]")


@hookimpl
def register_losses(register) -> None:  # type: ignore[no-untyped-def]
    register("lovasz", "mars_landslide.losses:lovasz",
             description="Lovász hinge (convex surrogate of 1 - IoU of the landslide class)")


@hookimpl
def register_tasks(register) -> None:  # type: ignore[no-untyped-def]
    register(TaskSpec(
        name="landslide",
        kind=TaskKind.SEGMENTATION,
        default_config=TASK_YAML,
        distribution="mars-landslide",
        description="Martian landslide segmentation on MMLS (Valles Marineris, 7 modalities)",
    ))
