"""The shared training/evaluation engine.

``train(cfg)`` runs any task end to end (see :mod:`.loop` for the epoch order and the test
hook, :mod:`.checkpoint` for the checkpoint layout, :mod:`.distributed` for ``torchrun``).
Logged per epoch (``step`` = 1-based epoch): ``train/loss``, ``val/loss``, ``val/<metric>``
for every value a metric's ``compute()`` returns, ``lr`` and ``epoch_time_s``.
"""

from .components import Components, MetricFactory, build_components, resolve_device
from .evaluation import evaluate_model
from .loop import TEST_EXIT_ENV, train

__all__ = [
    "TEST_EXIT_ENV",
    "Components",
    "MetricFactory",
    "build_components",
    "evaluate_model",
    "resolve_device",
    "train",
]
