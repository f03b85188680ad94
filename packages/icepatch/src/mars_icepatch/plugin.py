"""Plugin module of mars-icepatch: registers everything through mars-core's hooks.

Loaded on every ``mars-core`` start, so it imports no torch: components are registered as
"module:attr" strings that mars-core imports on first use.
"""

from __future__ import annotations

from pathlib import Path

from mars_core import hookimpl
from mars_core.registry import LazyFactory, lazy
from mars_core.tasks import TaskKind, TaskSpec

TASK_YAML = Path(__file__).with_name("icepatch.yaml")

#: The single-network models: registered below, and the models an ``icepatch-ensemble`` may hold.
MEMBER_TARGETS: dict[str, str] = {
    "xception-small": "mars_icepatch.models:xception_small",
    "resnet18-gray": "mars_icepatch.models:resnet18",
}
# Callable like the factories themselves; import on first call (this module imports no torch).
MEMBER_FACTORIES: dict[str, LazyFactory] = {name: lazy(target) for name, target in MEMBER_TARGETS.items()}


@hookimpl
def register_datasources(register) -> None:  # type: ignore[no-untyped-def]
    register("hirise-chips", "mars_icepatch.chips:HiriseChips",
             description="grayscale HiRISE chips + labels.csv, split by observation (root None: bundled real sample)")


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    register("xception-small", MEMBER_TARGETS["xception-small"],
             description="icepatch paper: reduced Xception (separable convs, BN before ReLU, dropout 0.5)")
    register("resnet18-gray", MEMBER_TARGETS["resnet18-gray"],
             description="baseline: timm ResNet-18, in_chans=1, random init")
    register("icepatch-ensemble", "mars_icepatch.ensemble:icepatch_ensemble",
             description="mean probability of icepatch models trained in separate runs (icepatch ensemble)")


@hookimpl
def register_tasks(register) -> None:  # type: ignore[no-untyped-def]
    register(TaskSpec(name="icepatch", kind=TaskKind.CLASSIFICATION, default_config=TASK_YAML,
                      distribution="mars-icepatch",
                      description="ice / no-ice HiRISE chunks, per-image verdicts, hot-pixel repair",
                      chunk_filter="mars_icepatch.chunks:black_centre_and_hot_pixels",
                      scene_summariser="mars_icepatch.verdict:scene_verdict"))


@hookimpl
def register_commands(register) -> None:  # type: ignore[no-untyped-def]
    from mars_icepatch.cli import app

    register("icepatch", app, description="per-observation verdicts for a chip folder; class balance")
