"""``soak runs``: the runs stored in a database."""

from __future__ import annotations

import typer

from soak import api
from soak.cli.commands.options import DB
from soak.durations import format_duration


def runs_command(db: str = DB) -> None:
    """List the runs in the database, newest last."""
    rows = api.runs(db)
    if not rows:
        typer.echo("no runs yet")
        return
    header = f"{'id':>4}  {'name':<28} {'status':<12} {'verdict':<12} {'started (UTC)':<25} {'length':>8} {'snaps':>6}"
    typer.echo(header)
    for run in rows:
        typer.echo(
            f"{run['id']:>4}  {run['name'][:28]:<28} {run['status']:<12} {run['verdict'] or '-':<12} "
            f"{run['started_at']:<25} {format_duration(run['duration_s'] or 0):>8} {run['snapshots']:>6}"
        )
