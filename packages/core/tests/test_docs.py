"""Every hook is documented, in code and in the core README (as datasette's tests do)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from mars_core import hookspecs

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
README = Path(__file__).parents[1] / "README.md"


def test_the_six_hooks_exist():
    assert set(HOOKS) == {
        "register_datasources", "register_models", "register_losses",
        "register_metrics", "register_tasks", "register_commands",
    }


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook))
    assert doc and len(doc) > 80, f"{hook} needs a real docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_readme(hook):
    assert f"`{hook}" in README.read_text(), f"{hook} is not documented in {README}"
