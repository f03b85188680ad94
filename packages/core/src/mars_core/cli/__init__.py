"""The ``mars-core`` command line.

``main`` owns the exit-code contract: 0 success, 2 an expected mistake (a :class:`MarsError`
or a usage error, reported on one line), 1 anything unexpected (with a traceback, because
that is a bug worth reporting).
"""

from __future__ import annotations

import os
import sys
import traceback

import typer

try:  # typer >= 0.2x vendors its own click; its exceptions are the ones raised
    from typer._click import exceptions as click_exc  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - older typer raises click's own
    from click import exceptions as click_exc  # type: ignore[no-redef]

from mars_core.errors import MarsError


def build_app() -> typer.Typer:
    from mars_core.cli.commands import app
    from mars_core.cli.plugin_commands import add_plugin_commands

    add_plugin_commands(app)
    return app


def main(argv: list[str] | None = None) -> int:
    # No network is assumed at run time: MLflow's usage telemetry would try to phone home.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        app = build_app()
        command = typer.main.get_command(app)
        # Without standalone mode click catches ``typer.Exit(code)`` itself and returns the
        # code: a plugin command's exit status must not be lost.
        result = command.main(args=args, prog_name="mars-core", standalone_mode=False)
        return result if isinstance(result, int) and not isinstance(result, bool) else 0
    except MarsError as exc:
        _error(str(exc))
        return exc.exit_code
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except getattr(click_exc, "NoArgsIsHelpError", ()) as exc:  # bare group: show help
        ctx = getattr(exc, "ctx", None)
        print(ctx.get_help() if ctx is not None else "see mars-core --help")
        return 0
    except click_exc.UsageError as exc:
        where = exc.ctx.command_path if getattr(exc, "ctx", None) else "mars-core"
        _error(f"{exc.format_message()} (see '{where} --help')")
        return 2
    except click_exc.ClickException as exc:
        _error(exc.format_message())
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        _error("interrupted")
        return 130
    except Exception:  # noqa: BLE001 - last-resort reporting of bugs
        traceback.print_exc()
        _error("unexpected error (a bug): please report it with the traceback above")
        return 1


def _error(message: str) -> None:
    one_line = " ".join(message.split())
    print(f"error: {one_line}", file=sys.stderr)


def entry() -> None:
    sys.exit(main())
