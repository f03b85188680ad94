"""Plugin module of mars-glacier: data source ``glacier-scenes``, nine models, metric
``glacier_map``, task ``glacier`` and the command ``mars-core glacier``.

Loaded on every ``mars-core`` start, so it imports no torch: components are registered as
"module:attr" strings that mars-core imports on first use.
"""

from __future__ import annotations

from pathlib import Path

from mars_core import hookimpl
from mars_core.tasks import TaskKind, TaskSpec
from mars_glacier.models.catalog import DESCRIPTIONS, FACTORIES, PREFIX

TASK_YAML = Path(__file__).with_name("glacier.yaml")


@hookimpl
def register_datasources(register) -> None:  # type: ignore[no-untyped-def]
    register("glacier-scenes", "mars_glacier.scenes:GlacierScenes",
             description="RGB + NIR (or 4-band) GeoTIFF scenes + glacier outlines; block split with gap; "
                         "root None: bundled Everest sample")


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    for name, target in FACTORIES.items():
        register(name, target, description=DESCRIPTIONS[name.removeprefix(PREFIX)])


@hookimpl
def register_metrics(register) -> None:  # type: ignore[no-untyped-def]
    register("glacier_map", "mars_glacier.metrics:GlacierMapMetrics",
             description="binary_map + MCC + per-class IoU (iou_glacier, iou_other)")


@hookimpl
def register_tasks(register) -> None:  # type: ignore[no-untyped-def]
    register(TaskSpec(name="glacier", kind=TaskKind.SEGMENTATION, default_config=TASK_YAML,
                      distribution="mars-glacier",
                      description="glacier extent from optical RGB + NIR against RGI/GLIMS outlines"))


@hookimpl
def register_commands(register) -> None:  # type: ignore[no-untyped-def]
    from mars_glacier.cli import app

    register("glacier", app, description="compare glacier extent between two dates; stack RGB + NIR; "
                                         "write a SYNTHETIC second date")
