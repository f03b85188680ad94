"""Checks an environment where mars-core is installed with only some task packages.

Run by ``nox -s isolation``: the installed task must be listed and runnable far enough to
resolve its configuration, and every absent task must fail with exit code 2 and a message
naming the package to install.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DISTS = {"landslide": "mars-landslide", "icefrag": "mars-icefrag", "rsl": "mars-rsl",
         "icepatch": "mars-icepatch", "glacier": "mars-glacier"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--installed", nargs="+", required=True)
    ap.add_argument("--absent", nargs="+", required=True)
    args = ap.parse_args()
    failures: list[str] = []

    for task in args.absent:
        try:
            md.distribution(DISTS[task])
            failures.append(f"{DISTS[task]} is installed but should be absent")
        except md.PackageNotFoundError:
            pass
        proc = subprocess.run(["mars-core", "run", task], capture_output=True, text=True)
        want = f"pip install {DISTS[task]}"
        if proc.returncode != 2 or want not in proc.stderr:
            failures.append(f"'mars-core run {task}': exit {proc.returncode}, stderr {proc.stderr.strip()!r}; "
                            f"expected exit 2 naming '{want}'")
        else:
            print(f"ok: mars-core run {task} -> exit 2: {proc.stderr.strip()}")

    listed = subprocess.run(["mars-core", "tasks"], capture_output=True, text=True)
    for task in args.installed:
        if listed.returncode != 0 or task not in listed.stdout.split("not installed")[0]:
            failures.append(f"'mars-core tasks' does not list installed task {task}: {listed.stdout!r}")
        else:
            print(f"ok: mars-core tasks lists {task}")
        # A bad override must be reported by key: proves the task's config resolves here.
        proc = subprocess.run(["mars-core", "run", task, "--set", "trainer.epochz=1"],
                              capture_output=True, text=True)
        if proc.returncode != 2 or "trainer.epochz" not in proc.stderr:
            failures.append(f"'mars-core run {task} --set trainer.epochz=1': exit {proc.returncode}, "
                            f"stderr {proc.stderr.strip()!r}")
        else:
            print(f"ok: mars-core run {task} resolves its configuration")
        # One real epoch on the bundled sample: proves the package declares what it imports.
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run.json"
            proc = subprocess.run(["mars-core", "run", task, "--set", "trainer.epochs=1", "--set",
                                   "trainer.progress=false", "--json", str(out)],
                                  capture_output=True, text=True, cwd=tmp)
            if proc.returncode != 0 or not out.is_file():
                failures.append(f"'mars-core run {task}' (1 epoch) failed: exit {proc.returncode}, "
                                f"stderr tail {proc.stderr.strip()[-400:]!r}")
            else:
                result = json.loads(out.read_text())
                print(f"ok: mars-core run {task} trained 1 epoch; model {result['model_uri']}")

    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
