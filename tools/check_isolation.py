"""Checks an environment where mars-core is installed with exactly one task package.

Run by ``nox -s isolation`` once per task package. What the package provides is read from
its own metadata and from ``mars-core plugins --json``, never from a list kept here, so a
package that starts registering a task is checked as a task without editing this script:

- its entry points load and appear under its distribution in ``mars-core plugins``;
- each task it registers is listed by ``mars-core tasks``, refuses a misspelled override by
  key, and trains for real (one short epoch on its bundled sample, tracked in a scratch
  MLflow store): that is the proof that the package declares everything it imports;
- a package that registers no task yet (a skeleton) is reported as such by ``mars-core run``;
- every sibling package named by ``--absent`` is really absent, and ``mars-core run`` of its
  task exits 2 with the generic "pip install mars-<task>" hint.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

GROUP = "mars_core"
# Enough to exercise data, model, loss, metrics, checkpointing and MLflow; cheap on 2 CPU cores.
CHEAP_RUN = ["trainer.epochs=1", "trainer.max_steps_per_epoch=1", "trainer.batch_size=2", "trainer.progress=false"]


def _mars(*argv: str, cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    env.pop("MARS_CORE_PLUGINS", None)
    env.pop("MARS_CORE_DISABLE_PLUGIN_AUTOLOAD", None)
    return subprocess.run(["mars-core", *argv], capture_output=True, text=True, cwd=cwd, env=env)


def _tail(text: str, n: int = 400) -> str:
    return text.strip()[-n:]


def check_installed(dist_name: str, extra_sets: list[str], failures: list[str]) -> None:
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        failures.append(f"{dist_name} is not installed")
        return
    eps = [ep.name for ep in dist.entry_points if ep.group == GROUP]
    if not eps:
        failures.append(f"{dist_name} announces no '{GROUP}' entry point")
        return
    listed = _mars("plugins", "--json")
    if listed.returncode != 0:
        failures.append(f"'mars-core plugins --json' exit {listed.returncode}: {_tail(listed.stderr)!r}")
        return
    report = {p["name"]: p for p in json.loads(listed.stdout)}
    tasks: list[str] = []
    for ep in eps:
        if ep not in report or report[ep]["distribution"] != dist.metadata["Name"]:
            failures.append(f"plugin '{ep}' of {dist_name} is not loaded by mars-core: {sorted(report)}")
            continue
        print(f"ok: plugin '{ep}' of {dist_name} {dist.version} loads")
        tasks += report[ep]["registered"].get("tasks", [])

    if not tasks:  # a skeleton: installs and imports, and says it has no task yet
        for ep in eps:
            proc = _mars("run", ep)
            if proc.returncode != 2 or "registers no such task" not in proc.stderr:
                failures.append(f"'mars-core run {ep}' (skeleton): exit {proc.returncode}, {_tail(proc.stderr)!r}")
            else:
                print(f"ok: {dist_name} registers no task; 'mars-core run {ep}' says so (exit 2)")
        return

    table = _mars("tasks")
    for task in tasks:
        if table.returncode != 0 or task not in table.stdout:
            failures.append(f"'mars-core tasks' does not list {task}: {_tail(table.stdout + table.stderr)!r}")
        else:
            print(f"ok: mars-core tasks lists {task}")
        # A misspelled key must be reported by name: proves the task's default config resolves here.
        proc = _mars("run", task, "--set", "trainer.epochz=1")
        if proc.returncode != 2 or "trainer.epochz" not in proc.stderr:
            failures.append(f"'mars-core run {task} --set trainer.epochz=1': exit {proc.returncode}, "
                            f"{_tail(proc.stderr)!r}")
        else:
            print(f"ok: mars-core run {task} resolves its configuration")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run.json"
            sets = [arg for kv in [*CHEAP_RUN, *extra_sets] for arg in ("--set", kv)]
            proc = _mars("run", task, *sets, "--json", str(out), cwd=tmp)
            if proc.returncode != 0 or not out.is_file():
                failures.append(f"'mars-core run {task}' (one short epoch) failed: exit {proc.returncode}, "
                                f"stderr tail {_tail(proc.stderr)!r}")
            else:
                result = json.loads(out.read_text())
                print(f"ok: mars-core run {task} trained and logged; model {result['model_uri']}")


def check_absent(dist_name: str, failures: list[str]) -> None:
    try:
        md.distribution(dist_name)
        failures.append(f"{dist_name} is installed but should be absent")
        return
    except md.PackageNotFoundError:
        pass
    task = dist_name.removeprefix("mars-")
    proc = _mars("run", task)
    want = f"pip install {dist_name}"
    if proc.returncode != 2 or want not in proc.stderr:
        failures.append(f"'mars-core run {task}': exit {proc.returncode}, {_tail(proc.stderr)!r}; "
                        f"expected exit 2 naming '{want}'")
    else:
        print(f"ok: {dist_name} absent; mars-core run {task} -> exit 2: {proc.stderr.strip()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--installed", required=True, help="the one task distribution installed, e.g. mars-icefrag")
    ap.add_argument("--absent", nargs="*", default=[], help="sibling distributions that must not be installed")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="extra override for the short training run (repeatable)")
    args = ap.parse_args()
    failures: list[str] = []
    check_installed(args.installed, args.sets, failures)
    for name in args.absent:
        check_absent(name, failures)
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
