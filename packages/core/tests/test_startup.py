"""A fast CLI start and a core that names no task.

The listing commands run in fresh interpreters (``python -c``) because ``sys.modules`` of
the pytest process already holds torch. A third-party task is "installed" by writing a
real ``.dist-info`` (metadata + entry point) onto ``PYTHONPATH``: the core learns about it
only from that metadata, as it would for any package on PyPI.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mars_core import plugins
from mars_core.errors import MarsError, PluginError
from mars_core.registry import LazyFactory, accepts, call_factory, lazy

TESTS = Path(__file__).parent
HEAVY = ("torch", "mlflow", "torchmetrics", "rasterio", "timm", "segmentation_models_pytorch", "kornia",
         "matplotlib")

PLUGIN_SOURCE = '''
from pathlib import Path

from mars_core import hookimpl
from mars_core.tasks import TaskKind, TaskSpec


@hookimpl
def register_datasources(register):
    register("tp-squares", "toy_plugin:ToySource", description="SYNTHETIC squares")


@hookimpl
def register_models(register):
    register("tp-net", "toy_plugin:TinyNet", description="two-layer conv net")


@hookimpl
def register_tasks(register):
    register(TaskSpec(name="thirdparty", kind=TaskKind.SEGMENTATION,
                      default_config=Path(__file__).with_name("thirdparty.yaml"),
                      distribution="mars-thirdparty", description="SYNTHETIC third-party task"))
'''


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a process in which the distribution ``mars-thirdparty`` is installed."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "mars_thirdparty-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mars-thirdparty\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text("[mars_core]\nthirdparty = thirdparty_plugin\n")
    (site / "thirdparty_plugin.py").write_text(PLUGIN_SOURCE)
    config = (TESTS / "toy_task.yaml").read_text()
    config = config.replace("task: toy", "task: thirdparty").replace("toy-squares", "tp-squares")
    (site / "thirdparty.yaml").write_text(config.replace("tiny-net", "tp-net"))
    env = {k: v for k, v in os.environ.items() if k not in (plugins.ENV_RESTRICT, plugins.ENV_DISABLE)}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(TESTS), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def _cli(env: dict[str, str], *argv: str, cwd: Path | None = None) -> tuple[int, str, str, list[str]]:
    """Run ``main(argv)`` in a fresh interpreter; return rc, stdout, stderr and the heavy modules it imported."""
    code = (
        "import json, sys\n"
        "from mars_core.cli import main\n"
        f"rc = main({list(argv)!r})\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)
    *err_lines, heavy = proc.stderr.rstrip("\n").split("\n")
    assert heavy.startswith("["), f"the interpreter died before reporting: {proc.stderr[-2000:]}"
    return proc.returncode, proc.stdout, "\n".join(err_lines), json.loads(heavy)


@pytest.mark.parametrize("argv", [["--help"], ["tasks"], ["plugins"], ["plugins", "--json"]])
def test_listing_commands_import_no_heavy_library(third_party, argv):
    rc, out, err, heavy = _cli(third_party, *argv)
    assert rc == 0, err
    assert heavy == [], f"mars-core {' '.join(argv)} imported {heavy}"
    if argv == ["tasks"]:
        assert "thirdparty" in out and "mars-thirdparty" in out
    if argv == ["plugins", "--json"]:
        report = {p["name"]: p for p in json.loads(out)}
        assert report["thirdparty"]["distribution"] == "mars-thirdparty"
        assert report["thirdparty"]["registered"]["models"] == ["tp-net"]


def test_third_party_task_runs_through_lazy_factories(third_party, tmp_path):
    # An unknown model key is refused by name, listing the real signature of the lazy factory.
    rc, _, err, _ = _cli(third_party, "run", "thirdparty", "--set", "model.depth=3", cwd=tmp_path)
    assert rc == 2 and "'depth'" in err and "in_channels, width" in err, err
    out = tmp_path / "run.json"
    rc, _, err, heavy = _cli(third_party, "run", "thirdparty", "--set", "trainer.epochs=1", "--json", str(out),
                             cwd=tmp_path)
    assert rc == 0, err
    assert "torch" in heavy  # training did import what the lazy factories name
    assert 0.0 <= json.loads(out.read_text())["metrics"]["test"]["miou"] <= 1.0


def test_missing_task_hints_come_from_entry_points(third_party):
    env = {**third_party, plugins.ENV_RESTRICT: "rsl"}
    rc, _, err, _ = _cli(env, "run", "thirdparty")
    assert rc == 2
    assert "plugin 'thirdparty' (mars-thirdparty 0.3.0) is installed" in err and "MARS_CORE_PLUGINS" in err
    rc, _, err, _ = _cli(third_party, "run", "nosuchtask")
    assert rc == 2 and "pip install mars-nosuchtask" in err and "thirdparty" in err, err


def test_core_code_names_no_task():
    """Task names may appear in docstrings as examples, never in code or comments."""
    pattern = re.compile(r"\b(landslide|icefrag|glacier|icepatch|rsl)\b", re.IGNORECASE)
    hits = []
    for path in sorted((TESTS.parent / "src" / "mars_core").rglob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc:
                    text = text.replace(doc, "")
        hits += [f"{path.name}: {m.group(0)}" for m in pattern.finditer(text)]
    assert hits == []


def test_lazy_factory_resolves_signature_on_demand():
    from mars_core.builtin.losses import FocalLoss

    factory = lazy("mars_core.builtin.losses:FocalLoss")
    assert inspect.signature(factory) == inspect.signature(FocalLoss)
    assert accepts(factory, "gamma") and not accepts(factory, "beta")
    with pytest.raises(MarsError, match="no parameter 'beta'; allowed: alpha, gamma"):
        call_factory("loss", "focal", factory, {"beta": 1.0})
    assert isinstance(call_factory("loss", "focal", factory, {"gamma": 1.0}), FocalLoss)


def test_builtins_are_registered_lazily_and_all_resolve():
    plugins.reset()
    regs = plugins.get_registries()
    for registry in (regs.losses, regs.metrics):
        for entry in registry:
            if entry.owner.plugin == plugins.BUILTIN:
                assert isinstance(entry.value, LazyFactory), entry.name
                assert callable(entry.value.load()), entry.name


def test_bad_lazy_targets_are_plugin_errors():
    with pytest.raises(PluginError, match="not of the form"):
        lazy("no_colon_here")
    broken = lazy("mars_core.no_such_module:thing")
    with pytest.raises(PluginError, match="cannot import mars_core.no_such_module:thing"):
        call_factory("model", "broken", broken, {})
    with pytest.raises(PluginError, match="cannot import"):
        lazy("mars_core.registry:no_such_name").load()
