"""Developer sessions. Each session gets its own virtual environment (reused locally,
fresh in CI) so that a missing install step shows up as a failure, not as luck."""

from __future__ import annotations

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]

# CPU wheels of these releases are what the project is tested with; see README.
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
PACKAGES = ["core", "landslide", "icefrag", "rsl", "icepatch", "glacier"]
TEST_DEPS = ["pytest>=8", "pytest-timeout>=2"]


def _install_all(session: nox.Session) -> None:
    session.install(*TORCH)
    session.install(*TEST_DEPS)
    session.install(*[arg for p in PACKAGES for arg in ("-e", f"packages/{p}")])


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests (distributed and MLflow-server tests included)."""
    _install_all(session)
    session.env["OMP_NUM_THREADS"] = session.env.get("OMP_NUM_THREADS", "2")
    session.run("pytest", "packages", *session.posargs)


@nox.session
def isolation(session: nox.Session) -> None:
    """Each task package installed alone beside mars-core: its tasks train, the others name their package.

    One environment and one torch install for all packages (torch is 6 GiB and CI disk is
    limited): after each package is checked, everything its install added (the package and
    its own dependencies) is uninstalled again, so the next package runs without them and an
    undeclared import fails here instead of passing by luck.
    """
    session.install(*TORCH)
    session.install("-e", "packages/core")
    baseline = _installed_names(session)
    task_packages = [p for p in PACKAGES if p != "core"]
    for package in task_packages:
        session.install("-e", f"packages/{package}")
        session.run("python", "tools/check_isolation.py", "--installed", f"mars-{package}",
                    "--absent", *[f"mars-{p}" for p in task_packages if p != package], *session.posargs)
        added = sorted(_installed_names(session) - baseline)
        session.run("python", "-m", "pip", "uninstall", "-y", *added)


def _installed_names(session: nox.Session) -> set[str]:
    import json

    listed = session.run("python", "-m", "pip", "list", "--format=json", "--disable-pip-version-check",
                         silent=True)
    # nox merges stderr into the output: keep the one JSON line.
    line = next(x for x in str(listed).splitlines() if x.startswith("["))
    return {str(d["name"]).lower().replace("_", "-") for d in json.loads(line)}


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "packages", "benchmarks", "tools", "noxfile.py")


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on the bundled sample, in a scratch directory."""
    _install_all(session)
    tmp = session.create_tmp()
    session.chdir(tmp)
    session.run("mars-core", "run", "landslide", "--json", "landslide-demo.json", *session.posargs)
    session.run("mars-core", "models", "landslide")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks. ``nox -s bench`` runs the raster benchmark; ``-- landslide`` or
    ``-- icefrag`` runs that task's model comparison instead (long: see its README);
    ``-- layout`` compares channels_last with NCHW whole-scene prediction; ``-- engine`` compares
    the training engine with a bare PyTorch loop."""
    _install_all(session)
    which = session.posargs[0] if session.posargs else "raster"
    extra = session.posargs[1:]
    scripts = {"raster": "benchmarks/bench_raster.py", "landslide": "benchmarks/bench_landslide.py",
               "icefrag": "benchmarks/bench_icefrag.py", "layout": "benchmarks/bench_layout.py",
               "engine": "benchmarks/bench_engine.py", "glacier": "benchmarks/bench_glacier.py",
               "rsl": "benchmarks/bench_rsl.py", "icepatch": "benchmarks/bench_icepatch.py",
               "icefrag-throughput": "benchmarks/bench_icefrag_throughput.py"}
    if which not in scripts:
        session.error(f"unknown benchmark '{which}'; choose one of {', '.join(scripts)}")
    session.run("python", scripts[which], *extra)
