"""The plugin contract: provenance, duplicates, misspelled hooks, restriction by env var."""

from __future__ import annotations

import types

import pytest

from mars_core import hookimpl, plugins
from mars_core.errors import MarsError, PluginError


def _module(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(mod, hook_name, hookimpl(fn))
    return mod


@pytest.fixture
def throwaway():
    """Register throwaway plugins for one test and always unregister them."""
    plugins.reset()
    names: list[str] = []

    def add(name: str, **hooks) -> types.ModuleType:
        mod = _module(name, **hooks)
        plugins.register_plugin(mod, name)
        names.append(name)
        return mod

    try:
        yield add
    finally:
        for n in names:
            plugins.unregister_plugin(n)
        plugins.reset()


def test_builtin_components_are_registered_with_their_owner():
    plugins.reset()
    regs = plugins.get_registries()
    entry = regs.losses.entry("bce")
    assert entry.owner.plugin == "mars_core.builtin"
    assert entry.owner.distribution == "mars-core"
    assert "binary_map" in regs.metrics


def test_throwaway_plugin_registers_and_is_removed(throwaway):
    throwaway("extra-models", register_models=lambda register: register("my-net", lambda: None))
    regs = plugins.get_registries()
    assert regs.models.entry("my-net").owner.plugin == "extra-models"
    plugins.unregister_plugin("extra-models")
    assert "my-net" not in plugins.get_registries().models


def test_duplicate_names_are_refused_naming_both(throwaway):
    throwaway("first-plugin", register_losses=lambda register: register("shared-loss", lambda: None))
    throwaway("second-plugin", register_losses=lambda register: register("shared-loss", lambda: None))
    with pytest.raises(PluginError) as info:
        plugins.get_registries()
    message = str(info.value)
    assert "shared-loss" in message and "first-plugin" in message and "second-plugin" in message


def test_duplicate_of_a_builtin_name_is_refused(throwaway):
    throwaway("shadowing", register_losses=lambda register: register("bce", lambda: None))
    with pytest.raises(PluginError, match="mars_core.builtin"):
        plugins.get_registries()


def test_misspelled_hook_is_refused():
    plugins.reset()
    mod = _module("typo-plugin", register_model=lambda register: None)  # missing 's'
    with pytest.raises(PluginError, match="register_model"):
        plugins.register_plugin(mod, "typo-plugin")
    # the broken plugin must not stay registered
    assert plugins.get_plugin_manager().get_plugin("typo-plugin") is None
    plugins.reset()


def test_non_callable_factory_is_refused(throwaway):
    throwaway("bad-factory", register_models=lambda register: register("not-callable", 42))
    with pytest.raises(PluginError, match="non-callable"):
        plugins.get_registries()


def test_restriction_by_environment_variable(monkeypatch):
    monkeypatch.setenv(plugins.ENV_RESTRICT, "rsl")
    pm = plugins.load_plugins()
    names = {n for n, _ in pm.list_name_plugin()}
    assert names == {"mars_core.builtin", "rsl"}


def test_disable_autoload_keeps_only_builtins(monkeypatch):
    monkeypatch.setenv(plugins.ENV_DISABLE, "1")
    pm = plugins.load_plugins()
    assert {n for n, _ in pm.list_name_plugin()} == {"mars_core.builtin"}


def test_installed_entry_points_record_their_distribution(monkeypatch):
    monkeypatch.delenv(plugins.ENV_RESTRICT, raising=False)
    pm = plugins.load_plugins()
    rsl = pm.get_plugin("rsl")
    owner = plugins.owner_of(pm, rsl)
    assert owner.distribution == "mars-rsl" and owner.version


def test_missing_task_message_names_no_fixed_list():
    regs = plugins.Registries()
    regs.tasks.add("landslide", object(), plugins.Owner("landslide"))  # type: ignore[arg-type]
    with pytest.raises(MarsError, match=r"installed tasks: landslide\).*pip install mars-sometask"):
        regs.task("sometask")
    with pytest.raises(MarsError, match="unknown task 'lanslide' \\(did you mean 'landslide'"):
        regs.task("lanslide")


def test_plugin_without_task_is_reported_as_registering_no_task(throwaway, monkeypatch):
    """A loaded plugin that registers components but no task (a skeleton, a component pack)."""
    import importlib.metadata as md

    throwaway("craters", register_losses=lambda register: register("crater-loss", lambda: None))
    regs = plugins.get_registries()
    assert "craters" in [o.plugin for o in regs.plugins_without_task()]
    ep = md.EntryPoint(name="craters", value="mars_craters.plugin", group=plugins.PROJECT_NAME)
    monkeypatch.setattr(plugins.md, "entry_points", lambda group: [ep] if group == plugins.PROJECT_NAME else [])
    with pytest.raises(MarsError, match=r"plugin 'craters' \(mars_craters.plugin\) is installed but registers no "
                                        r"such task"):
        regs.task("craters")


def test_plugin_command_exit_code_reaches_the_shell(throwaway):
    """A plugin command ending with ``typer.Exit(3)`` must make ``main`` return 3, not 0."""
    import typer

    from mars_core.cli import main

    def register_commands(register) -> None:
        def fails() -> None:
            raise typer.Exit(3)

        def succeeds() -> None:
            return None

        register("exit-three", fails)
        register("exit-zero", succeeds)

    throwaway("exit-code-plugin", register_commands=register_commands)
    assert main(["exit-three"]) == 3
    assert main(["exit-zero"]) == 0
