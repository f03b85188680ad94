"""User-facing errors.

Anything a user can cause (bad config, bad raster, unknown name, unreachable tracking server)
is raised as :class:`MarsError`; the CLI prints its message on one line and exits with 2.
Every other exception is a bug and exits with 1.
"""


class MarsError(Exception):
    """An expected mistake in input or configuration, reported without a traceback."""

    exit_code = 2


class PluginError(MarsError):
    """A plugin is broken: a misspelled hook, a duplicate name, a failing import."""
