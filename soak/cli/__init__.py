"""The ``soak`` command: a thin typer layer over the Python API; errors become one line and an exit code."""

from __future__ import annotations

import sqlite3
import sys

import typer

from soak.cli.commands import register
from soak.errors import SoakError

try:  # typer 0.2x carries its own copy of click; older versions use click itself
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError  # type: ignore[assignment]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Long-running memory-leak soak tests for Python.",
)
register(app)


def usage_error_line(exc: ClickException) -> str:
    """A usage error (an unknown option, a value that is not a number...) as one line, with
    where to read the usage, instead of click's usage block."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    return f"soak: error: {message}{hint}"


def main(argv: list[str] | None = None) -> None:
    try:
        code = app(args=argv, standalone_mode=False)
    except NoArgsIsHelpError as exc:  # `soak` or a group alone: the help, as before
        print(exc.ctx.get_help(), file=sys.stderr)
        sys.exit(exc.exit_code)
    except ClickException as exc:
        print(usage_error_line(exc), file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("soak: aborted", file=sys.stderr)
        sys.exit(130)
    except SoakError as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        # A file SQLite opened but cannot read through (a garbage page, text that is not UTF-8):
        # found only when a query reaches the damage, after every check at open time passed.
        print(f"soak: error: the database is damaged ({exc}); restore it from a copy or pass another --db", file=sys.stderr)
        sys.exit(2)
    if isinstance(code, int):  # typer.Exit(code) in a command, returned instead of raised
        sys.exit(code)
