"""The plugin contract of mars-core.

Every hook receives a ``register`` callback instead of returning values. That keeps the
provenance of each name (the plugin whose hook called ``register``) available to the
plugin manager, which is how duplicate names are refused with both culprits named, and how
``mars-core plugins`` can say which distribution owns what. Built-in components are
registered through exactly the same hooks as third-party ones.

A plugin module implements any subset of these hooks, decorated with
``mars_core.hookimpl``, and is announced in its distribution's metadata::

    [project.entry-points.mars_core]
    mytask = "mars_mytask.plugin"

Factories may be given as ``"package.module:attr"`` strings (or ``mars_core.registry.lazy``
objects): they are imported on first use. Registration runs on every CLI start, ``--help``
included, so a plugin module and its hooks should import nothing heavier than mars-core
itself; torch, rasterio and friends belong inside the registered targets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from mars_core import hookspec

if TYPE_CHECKING:
    from mars_core.tasks import TaskSpec


class RegisterFactory(Protocol):
    """Callback handed to the ``register_*`` hooks that take factories."""

    def __call__(self, name: str, factory: Callable[..., Any] | str, *, description: str = "") -> None: ...


class RegisterTask(Protocol):
    """Callback handed to :func:`register_tasks`."""

    def __call__(self, spec: TaskSpec) -> None: ...


class RegisterCommand(Protocol):
    """Callback handed to :func:`register_commands`."""

    def __call__(self, name: str, command: Any, *, description: str = "") -> None: ...


@hookspec
def register_datasources(register: RegisterFactory) -> None:
    """Register data sources by name.

    ``register(name, factory)``: ``factory(root: str | None, **params)`` returns an object
    that follows :class:`mars_core.data.DataSource`. ``root=None`` means "the small sample
    bundled with the package", so that every task runs on a fresh machine without
    downloads. Extra keyword parameters come from the ``data`` section of the run
    configuration; unknown ones are rejected by name before the factory is called.
    """


@hookspec
def register_models(register: RegisterFactory) -> None:
    """Register model architectures by name.

    ``register(name, factory)``: ``factory(**params)`` returns a ``torch.nn.Module``.
    When the factory accepts ``in_channels`` and the configuration does not set it, the
    engine passes the number of bands of the data source's input contract. Segmentation
    models take ``image`` [B,C,H,W]; change-detection models take ``image1, ..., imageT``
    (T = the contract's ``n_inputs``; a model that names a ``times`` parameter also gets the
    dates' acquisition times [B,T], days since J2000, NaN unknown);
    both return logits [B,1,H,W] for binary targets. Classification models return [B,K],
    K = the number of classes (also two for binary: softmax over two logits); a factory that
    accepts ``num_classes`` gets K from the contract unless the configuration sets it.
    Models must be rebuildable from ``factory(**params)`` alone: MLflow stores weights
    and parameters, never a pickled module.
    """


@hookspec
def register_losses(register: RegisterFactory) -> None:
    """Register loss functions by name.

    ``register(name, factory)``: ``factory(**params)`` returns a callable
    ``loss(logits, target) -> scalar tensor`` (usually an ``nn.Module``).

    For maps the target is the batch's ``mask`` [B,1,H,W]: class values (0/1 for binary
    maps) and ``mars_core.masking.IGNORE`` (255) at pixels that must count in neither loss
    nor metrics (nodata, outside the label coverage, split gaps, pixels another evaluation
    tile already scored). A loss must exclude those pixels from its value and its gradient
    (``mars_core.masking.split_target`` gives the clean target and the weight).
    """


@hookspec
def register_metrics(register: RegisterFactory) -> None:
    """Register evaluation metrics by name.

    ``register(name, factory)``: ``factory(**params)`` returns a ``torchmetrics.Metric``
    whose ``update(probabilities, target)`` accumulates over a whole split and whose
    ``compute()`` returns a tensor or a ``dict[str, tensor]`` of named values. Using
    torchmetrics means the states are reduced across processes under ``torchrun``.
    Map targets hold ``mars_core.masking.IGNORE`` (255) at excluded pixels (see
    ``register_losses``); a metric must not count them.
    """


@hookspec
def register_tasks(register: RegisterTask) -> None:
    """Register tasks: named recipes that ``mars-core run <task>`` executes.

    ``register(spec)`` with a :class:`mars_core.tasks.TaskSpec` naming the task kind, the
    default YAML configuration shipped in the package and the distribution to install.
    """


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Register extra CLI sub-commands under ``mars-core <name>``.

    ``register(name, command)`` where ``command`` is a ``typer.Typer`` application (added
    as a command group) or a plain function (added as a single command). Names must not
    clash with the core commands or with other plugins. The command is built for every
    ``mars-core --help``: its module should import torch and other heavy libraries inside
    the command functions, not at module level.
    """
