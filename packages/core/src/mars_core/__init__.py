"""mars-core: the thin, task-agnostic core of the Mars remote-sensing toolkit.

Only the pluggy markers are exported here, so that a task package needs nothing more than
``from mars_core import hookimpl`` to take part; everything else lives in named modules.
"""

from importlib.metadata import PackageNotFoundError, version

import pluggy

PROJECT_NAME = "mars_core"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

try:
    __version__ = version("mars-core")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
