"""Sub-commands contributed by plugins through ``register_commands``."""

from __future__ import annotations

import typer

from mars_core.errors import PluginError

CORE_COMMANDS = {"plugins", "tasks", "run", "evaluate", "predict", "models"}


def add_plugin_commands(app: typer.Typer) -> None:
    from mars_core.plugins import get_registries

    for entry in get_registries().commands:
        if entry.name in CORE_COMMANDS:
            raise PluginError(f"plugin {entry.owner} registered command '{entry.name}', which is a core command")
        if isinstance(entry.value, typer.Typer):
            app.add_typer(entry.value, name=entry.name, help=entry.description or None)
        elif callable(entry.value):
            app.command(name=entry.name, help=entry.description or None)(entry.value)
        else:
            raise PluginError(f"plugin {entry.owner} registered command '{entry.name}' that is neither a "
                              "typer.Typer nor a function")
