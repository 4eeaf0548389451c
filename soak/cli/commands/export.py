"""``soak export``: a run's series and findings as CSV or JSON."""

from __future__ import annotations

import typer

from soak import api
from soak.cli.commands.options import DB
from soak.errors import BadInput
from soak.reports.export import WHAT
from soak.reports.output import write_output


def export_command(
    run: str = typer.Argument("latest", help="Run id, run name (newest of that name), or latest."),
    db: str = DB,
    fmt: str = typer.Option("json", "--format", "-f", help="json (everything) or csv (one table, see --what)."),
    what: str = typer.Option("snapshots", "--what", help="For csv: snapshots, sites (sparse samples) or findings."),
    output: str = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
) -> None:
    """Export a run's stored series and findings."""
    if fmt not in ("json", "csv"):
        raise BadInput("--format must be json or csv")
    if what not in WHAT:
        raise BadInput(f"--what must be one of {', '.join(WHAT)}")
    write_output(api.export(db, run, fmt=fmt, what=what), output)
