"""The plugin registers without importing torch, and every name it registers resolves.

Registration runs on every ``mars-core`` start; components are "module:attr" strings that
mars-core imports on first use, so a typo in one would only show when a user picks it:
loading each target here catches it at test time.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import pytest

from mars_core import plugins
from mars_core.registry import LazyFactory

PLUGIN = "icefrag"
HEAVY = ("torch", "mlflow", "torchmetrics", "rasterio", "timm", "segmentation_models_pytorch", "kornia",
         "matplotlib")


@pytest.mark.parametrize("argv", [["icefrag", "--help"], ["tasks"], ["plugins", "--json"]])
def test_cli_listing_imports_no_heavy_library(argv: list[str]) -> None:
    code = ("import json, sys\nfrom mars_core.cli import main\n"
            f"rc = main({argv!r})\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\nsys.exit(rc)\n")
    env = {**os.environ, plugins.ENV_RESTRICT: PLUGIN}
    env.pop(plugins.ENV_DISABLE, None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert PLUGIN in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_every_registered_target_resolves() -> None:
    regs = plugins.collect(plugins.load_plugins())
    owned = [(registry.kind, e) for registry in (regs.datasources, regs.models, regs.losses, regs.metrics)
             for e in registry if e.owner.plugin == PLUGIN]
    assert owned, f"plugin {PLUGIN} registered no component"
    for kind, entry in owned:
        assert isinstance(entry.value, LazyFactory), (kind, entry.name)
        assert callable(entry.value.load()), (kind, entry.name)
        inspect.signature(entry.value)  # the real signature, as call_factory reads it
