"""The one plugin manager, and the registries it fills.

Plugins are modules announced under the entry-point group ``mars_core``. Loading calls
``check_pending()`` so that a misspelled hook name fails at start-up instead of being
silently ignored. ``MARS_CORE_PLUGINS`` (a comma-separated list of entry-point names)
restricts which plugins load; ``MARS_CORE_DISABLE_PLUGIN_AUTOLOAD=1`` loads none but the
built-ins. The core's own components are registered through the same hooks by
``mars_core.builtin``.

The core names no task: which tasks exist, and which package to install for a missing one,
comes from the installed entry points, so a third-party task package needs no core edit.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from mars_core import PROJECT_NAME, hookspecs
from mars_core.errors import MarsError, PluginError
from mars_core.registry import LazyFactory, Owner, Registry
from mars_core.tasks import TaskSpec

ENV_RESTRICT = "MARS_CORE_PLUGINS"
ENV_DISABLE = "MARS_CORE_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN = "mars_core.builtin"

@dataclass
class Registries:
    datasources: Registry[Callable[..., Any]] = field(default_factory=lambda: Registry("data source"))
    models: Registry[Callable[..., Any]] = field(default_factory=lambda: Registry("model"))
    losses: Registry[Callable[..., Any]] = field(default_factory=lambda: Registry("loss"))
    metrics: Registry[Callable[..., Any]] = field(default_factory=lambda: Registry("metric"))
    tasks: Registry[TaskSpec] = field(default_factory=lambda: Registry("task"))
    commands: Registry[Any] = field(default_factory=lambda: Registry("command"))
    # Every plugin that was loaded (registered anything or not), for "installed but no task".
    loaded: dict[str, Owner] = field(default_factory=dict)

    def all(self) -> dict[str, Registry[Any]]:
        return {
            "datasources": self.datasources,
            "models": self.models,
            "losses": self.losses,
            "metrics": self.metrics,
            "tasks": self.tasks,
            "commands": self.commands,
        }

    def task(self, name: str) -> TaskSpec:
        if name in self.tasks:
            return self.tasks.get(name)
        raise MarsError(self.missing_task_message(name))

    def plugins_without_task(self) -> list[Owner]:
        """Loaded plugins (built-ins aside) that registered no task: skeletons, component packs."""
        with_task = {e.owner.plugin for e in self.tasks}
        return [o for n, o in sorted(self.loaded.items()) if n != BUILTIN and n not in with_task]

    def missing_task_message(self, name: str) -> str:
        """Why ``name`` is not a task here, from what is installed rather than from a list of names.

        An installed entry point of that name tells the most (not loaded because of the
        environment, or loaded but registering no such task); otherwise the generic answer
        holds for any task package, ours or a third party's.
        """
        installed = ", ".join(self.tasks.names()) or "none"
        hint = _installed_plugin_hint(self, name)
        if hint:
            return hint
        close = self.tasks.unknown_message(name)
        if "did you mean" in close:  # most likely a typo; a package of that name stays possible
            return f"{close}; if '{name}' is another task, install its package (usually mars-{name})"
        return (f"task '{name}' is not installed (installed tasks: {installed}); a task comes from its own "
                f"package, usually named mars-<task>: pip install mars-{name} (see 'mars-core plugins')")


def _dist_label(ep: md.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else ep.value


def _installed_plugin_hint(regs: Registries, name: str) -> str | None:
    """Explain a missing task whose package is installed after all (its entry point has its name)."""
    for ep in md.entry_points(group=PROJECT_NAME):
        dist = getattr(ep, "dist", None)
        dist_name = (dist.metadata["Name"] or "").lower().replace("_", "-") if dist is not None else ""
        if ep.name != name and dist_name != f"mars-{name}":
            continue
        if ep.name in regs.loaded:
            return (f"task '{name}' is not available: plugin '{ep.name}' ({_dist_label(ep)}) is installed "
                    "but registers no such task")
        allowed = _restriction()
        if os.environ.get(ENV_DISABLE, "").strip() not in ("", "0"):
            why = f"{ENV_DISABLE} is set"
        elif allowed is not None and ep.name not in allowed:
            why = f"{ENV_RESTRICT}={','.join(sorted(allowed))} leaves it out"
        else:
            why = "it was not loaded in this process"
        return f"task '{name}' is not available: plugin '{ep.name}' ({_dist_label(ep)}) is installed but {why}"
    return None


def _restriction() -> set[str] | None:
    raw = os.environ.get(ENV_RESTRICT)
    if raw is None or not raw.strip():
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    return pm


def load_plugins() -> pluggy.PluginManager:
    """Build a plugin manager with the built-ins and the allowed entry-point plugins."""
    import importlib

    pm = _new_manager()
    pm.register(importlib.import_module(BUILTIN), name=BUILTIN)
    if os.environ.get(ENV_DISABLE, "").strip() not in ("", "0"):
        pm.check_pending()
        return pm
    allowed = _restriction()
    for ep in md.entry_points(group=PROJECT_NAME):
        if allowed is not None and ep.name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole CLI down silently
            raise PluginError(f"plugin '{ep.name}' ({ep.value}) failed to import: {exc}") from exc
        pm.register(module, name=ep.name)
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _owners(pm)[ep.name] = Owner(ep.name, dist.metadata["Name"], dist.version)
    _check_pending(pm)
    return pm


# Which distribution provided each entry-point plugin, per manager. Kept here rather than in
# pluggy's private bookkeeping so a pluggy upgrade cannot break provenance.
_OWNERS: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, Owner]] = weakref.WeakKeyDictionary()


def _owners(pm: pluggy.PluginManager) -> dict[str, Owner]:
    return _OWNERS.setdefault(pm, {})


def _check_pending(pm: pluggy.PluginManager) -> None:
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"invalid plugin: {exc}") from exc


def owner_of(pm: pluggy.PluginManager, plugin: object) -> Owner:
    name = pm.get_name(plugin) or repr(plugin)
    if name in _owners(pm):
        return _owners(pm)[name]
    if name == BUILTIN:
        from mars_core import __version__

        return Owner(name, "mars-core", __version__)
    return Owner(name)


def collect(pm: pluggy.PluginManager) -> Registries:
    """Call every ``register_*`` hook plugin by plugin, recording who registered what."""
    regs = Registries()
    for name, plugin in pm.list_name_plugin():
        regs.loaded[name] = owner_of(pm, plugin)
    factory_hooks = {
        "register_datasources": regs.datasources,
        "register_models": regs.models,
        "register_losses": regs.losses,
        "register_metrics": regs.metrics,
    }
    for hook_name, registry in factory_hooks.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            owner = owner_of(pm, impl.plugin)

            def register(name: str, factory: Callable[..., Any] | str, *, description: str = "",
                         _r: Registry[Any] = registry, _o: Owner = owner) -> None:
                if isinstance(factory, str):  # "package.module:attr": imported on first use
                    try:
                        factory = LazyFactory(factory)
                    except PluginError as exc:
                        raise PluginError(f"plugin {_o} registered {_r.kind} '{name}': {exc}") from None
                if not callable(factory):
                    raise PluginError(f"plugin {_o} registered {_r.kind} '{name}' with a non-callable factory")
                _r.add(name, factory, _o, description)

            impl.function(register=register)

    for impl in pm.hook.register_tasks.get_hookimpls():
        owner = owner_of(pm, impl.plugin)

        def register_task(spec: TaskSpec, _o: Owner = owner) -> None:
            if not isinstance(spec, TaskSpec):
                raise PluginError(f"plugin {_o} registered a task that is not a TaskSpec: {spec!r}")
            regs.tasks.add(spec.name, spec, _o, spec.description)

        impl.function(register=register_task)

    for impl in pm.hook.register_commands.get_hookimpls():
        owner = owner_of(pm, impl.plugin)

        def register_command(name: str, command: Any, *, description: str = "", _o: Owner = owner) -> None:
            regs.commands.add(name, command, _o, description)

        impl.function(register=register_command)
    return regs


_state: dict[str, Any] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    if "pm" not in _state:
        _state["pm"] = load_plugins()
    return _state["pm"]


def get_registries() -> Registries:
    """The registries of the current process (built once, then cached)."""
    if "regs" not in _state:
        _state["regs"] = collect(get_plugin_manager())
    return _state["regs"]


def reset() -> None:
    """Forget the cached manager and registries (tests, and after registering a plugin)."""
    _state.clear()


def register_plugin(module: object, name: str) -> None:
    """Register an extra plugin object in this process (used by tests and notebooks)."""
    pm = get_plugin_manager()
    pm.register(module, name=name)
    try:
        _check_pending(pm)
    except PluginError:
        pm.unregister(module)
        raise
    finally:
        _state.pop("regs", None)


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _state.pop("regs", None)
