"""``soak fleet``: per finding, the runs and hosts it appears on; per target, where it is clean."""

from __future__ import annotations

import typer

from soak import api
from soak.cli.commands.options import DB, FORMATS
from soak.errors import BadInput
from soak.reports.output import write_output


def fleet_command(
    db: str = DB,
    fmt: str = typer.Option("text", "--format", "-f", help="text, json (schema leaksoak.fleet/1), markdown, or html."),
    output: str = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Summarize the runs of a database made by `soak merge`, finding by finding and target by target.

    Each finding id with the number of runs and hosts it appears on and its growth (min, median,
    max); each target with the hosts on which it leaked and those on which it was clean.
    """
    if fmt not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}")
    write_output(api.fleet(db, fmt=fmt), output)
