"""``soak merge OUT.db IN.db …``: many machines' runs in one database."""

from __future__ import annotations

import typer

from soak import api


def merge_command(
    out: str = typer.Argument(..., help="The merged database (created if it does not exist)."),
    inputs: list[str] = typer.Argument(..., help="Databases to merge in, e.g. each CI job's soak.db."),
) -> None:
    """Merge the finished runs of each IN.db into OUT.db, keeping each run's host and identity.

    A run already in OUT.db is left alone, so merging a file twice changes nothing; a run that
    went on after it was merged (resumed) replaces its earlier copy. Runs still running are not
    merged. A bad input changes nothing: exit 2 with one line naming it.
    """
    for result in api.merge(out, inputs):
        notes = []
        if result.replaced:
            notes.append(f"{len(result.replaced)} replaced")
        if result.present:
            notes.append(f"{result.present} already present")
        if result.running:
            notes.append(f"{len(result.running)} still running, not merged (ids {', '.join(map(str, result.running))})")
        more = f" ({'; '.join(notes)})" if notes else ""
        typer.echo(f"{result.path}: {len(result.merged)} runs merged{more}")
