"""``mars-core`` with the SYNTHETIC toy task registered, in a fresh process.

Usage: python cli_toy.py COMMAND [ARGS...] (the same arguments as ``mars-core``).
Tests launch it as a real subprocess where several processes must share one store;
``mars-core sweep --workers N`` re-launches this same program for its workers, so they
see the toy task too.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import toy_plugin  # noqa: E402

from mars_core import plugins  # noqa: E402
from mars_core.cli import main  # noqa: E402

if __name__ == "__main__":
    plugins.reset()
    toy_plugin.install()
    sys.exit(main(sys.argv[1:]))
