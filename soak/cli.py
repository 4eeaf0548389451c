"""The ``soak`` command: a thin typer layer over the Python API; errors become one line and an exit code."""

from __future__ import annotations

import sys

import typer

from soak.commands import register
from soak.errors import SoakError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Long-running memory-leak soak tests for Python.",
)
register(app)


def main() -> None:
    try:
        app()
    except SoakError as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
