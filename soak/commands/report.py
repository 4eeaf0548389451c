"""``soak report``: the leak report of a run, during or after it."""

from __future__ import annotations

import typer

from soak import api
from soak.commands.options import DB, FORMAT, FORMATS
from soak.errors import BadInput
from soak.output import write_output


def report_command(
    db: str = DB,
    run: str = typer.Option("latest", "--run", "-r", help="Run id, run name (newest of that name), or latest."),
    fmt: str = FORMAT,
    output: str = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Print the report of a run: verdict, then each finding with its growth rate, line and traceback."""
    if fmt not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}")
    write_output(api.report(db, run, fmt=fmt), output)
