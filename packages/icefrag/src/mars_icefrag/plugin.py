"""Plugin module of mars-icefrag: registers everything through mars-core's hooks.

Loaded on every ``mars-core`` start, so it imports no torch: components are registered as
"module:attr" strings that mars-core imports on first use.
"""

from __future__ import annotations

from pathlib import Path

from mars_core import hookimpl
from mars_core.tasks import TaskKind, TaskSpec

TASK_YAML = Path(__file__).with_name("icefrag.yaml")


@hookimpl
def register_datasources(register) -> None:  # type: ignore[no-untyped-def]
    register("icefrag-pairs", "mars_icefrag.data.pairs:IcefragPairs",
             description="T1/T2/mask GeoTIFF folders, tiles with overlap, split by scene (root None: SYNTHETIC sample)")


@hookimpl
def register_models(register) -> None:  # type: ignore[no-untyped-def]
    register("siamese-resnet50-aam", "mars_icefrag.models:siamese_resnet50_aam",
             description="Su et al.: Siamese ResNet-50 with augmented attention (log-odds of 2-class softmax)")
    register("siamese-resnet50", "mars_icefrag.models:siamese_resnet50",
             description="ablation: Siamese ResNet-50 without attention")
    register("fc-ef", "mars_icefrag.models:fc_ef", description="FC-EF early fusion (Daudt et al. 2018)")
    register("fc-siam-conc", "mars_icefrag.models:fc_siam_conc", description="FC-Siam-conc (Daudt et al. 2018)")
    register("fc-siam-diff", "mars_icefrag.models:fc_siam_diff", description="FC-Siam-diff (Daudt et al. 2018)")
    register("bit", "mars_icefrag.models:bit",
             description="BIT bitemporal image transformer, ResNet-18 S4 (Chen et al. 2021)")
    register("classical-diff", "mars_icefrag.models:classical_diff",
             description="classical baseline, no training: percentile stretch, Gaussian, |T2-T1|, percentile threshold")


@hookimpl
def register_losses(register) -> None:  # type: ignore[no-untyped-def]
    register("icefrag-loss", "mars_icefrag.losses:icefrag_loss",
             description="Su et al.: 0.1*focal(0.25, 2) + 0.9*(-log dice)")
    register("weighted-bce", "mars_icefrag.losses:WeightedBCE",
             description="BCE with positive weight (number or 'auto')")


@hookimpl
def register_metrics(register) -> None:  # type: ignore[no-untyped-def]
    register("event", "mars_icefrag.metrics:EventMetric",
             description="event TPR/FDR from 8-connected components (every component), with component counts")


@hookimpl
def register_tasks(register) -> None:  # type: ignore[no-untyped-def]
    register(TaskSpec(name="icefrag", kind=TaskKind.CHANGE_DETECTION, default_config=TASK_YAML,
                      distribution="mars-icefrag",
                      description="detached ice-fragment change detection on bitemporal HiRISE (Su et al.)"))


@hookimpl
def register_commands(register) -> None:  # type: ignore[no-untyped-def]
    from mars_icefrag.cli import app

    register("icefrag", app, description="associate fragments with shadows; write SYNTHETIC scenes")
