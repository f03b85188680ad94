"""Every package declares what it imports, and only what it imports.

An undeclared import works in the monorepo's shared environment (a sibling package pulled
the library in) and breaks for a user who installs one package alone; a declared library
nobody imports costs every user an install. Both are read from the sources, not from a
list: each package's ``src`` is parsed with ``ast`` (imports inside functions count, they
run too; ``if TYPE_CHECKING:`` blocks do not) and the import names are mapped to
distributions with ``importlib.metadata.packages_distributions()``. An import guarded by
``except ImportError`` is optional: it need not be declared, and counts as a use if it is.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

PACKAGES = Path(__file__).resolve().parents[2]
# Declared on purpose without an import: the interpreter needs them, the code does not name them.


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _normalise(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])


def _declared(pyproject: Path) -> tuple[str, set[str], set[str], set[str]]:
    """Distribution name, runtime requirements, requirements of the extras, and requirements
    used without an import (a plugin's host: mars-core loads the package's entry point)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    runtime = {_requirement_name(r) for r in project.get("dependencies", [])}
    extras = {_requirement_name(r) for reqs in project.get("optional-dependencies", {}).values() for r in reqs}
    implicit = {"mars-core"} if "mars_core" in project.get("entry-points", {}) else set()
    return _normalise(project["name"]), runtime, extras, implicit


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _guards_import_error(node: ast.Try) -> bool:
    names = set()
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        names |= {t.id for t in types if isinstance(t, ast.Name)}
    return bool(names & {"ImportError", "ModuleNotFoundError"})


def _imports(src: Path) -> tuple[dict[str, list[str]], set[str]]:
    """Top-level module names imported at run time under ``src`` (-> files importing them),
    and the subset imported only optionally."""
    required: dict[str, list[str]] = {}
    optional: set[str] = set()

    def visit(node: ast.AST, where: str, guarded: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, where, guarded)
            return
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module.split(".")[0]]
        for module in modules:
            if guarded:
                optional.add(module)
            else:
                required.setdefault(module, []).append(where)
        if isinstance(node, ast.Try) and _guards_import_error(node):
            for stmt in [*node.body, *(s for h in node.handlers for s in h.body)]:
                visit(stmt, where, True)
            for stmt in [*node.orelse, *node.finalbody]:
                visit(stmt, where, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, where, guarded)

    for path in sorted(src.rglob("*.py")):
        visit(ast.parse(path.read_text(), filename=str(path)), str(path.relative_to(src)), False)
    return required, optional - set(required)


def _packages() -> list[Path]:
    return sorted(p for p in PACKAGES.iterdir() if (p / "pyproject.toml").is_file() and (p / "src").is_dir())


def _own_modules(src: Path) -> set[str]:
    return {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


@pytest.mark.parametrize("package", _packages(), ids=lambda p: p.name)
def test_every_import_is_declared_and_every_dependency_imported(package: Path) -> None:
    name, runtime, extras, implicit = _declared(package / "pyproject.toml")
    src = package / "src"
    module_to_dists = {k: {_normalise(d) for d in v} for k, v in md.packages_distributions().items()}
    own = _own_modules(src)
    undeclared: list[str] = []
    used: set[str] = set(implicit)
    required, optional = _imports(src)
    for module in optional:
        used |= module_to_dists.get(module, set()) & (runtime | extras)
    for module, files in sorted(required.items()):
        if module in sys.stdlib_module_names or module in own or module == "__future__":
            continue
        dists = module_to_dists.get(module)
        if not dists:
            undeclared.append(f"{module} (no installed distribution provides it; imported in {files[0]})")
            continue
        hit = dists & (runtime | extras)
        if hit:
            used |= hit
        else:
            where = ", ".join(sorted(set(files))[:3])
            undeclared.append(f"{module} from {'/'.join(sorted(dists))} (imported in {where})")
    unused = sorted(runtime - used)
    assert (undeclared, unused) == ([], []), (
        f"{name}: imports without declaring {undeclared}; declares without importing {unused}")
