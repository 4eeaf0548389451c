"""``soak compare BASE_DB NEW_DB``: did a leak appear or speed up since the baseline?"""

from __future__ import annotations

import typer

from soak import api
from soak.errors import BadInput


def compare_command(
    base_db: str = typer.Argument(..., help="The baseline database (e.g. last night's)."),
    new_db: str = typer.Argument(..., help="The database to judge against it."),
    run_base: str = typer.Option(None, "--run-base", help="Run id or name in BASE_DB (default: the newest completed run of each target)."),
    run_new: str = typer.Option(None, "--run-new", help="Run id or name in NEW_DB (default: the newest completed run of each target)."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json (schema leaksoak.compare/1)."),
) -> None:
    """Compare runs of the same targets, finding by finding, and exit 1 on a regression.

    A regression is a new finding with verdict leak, or a finding whose growth rate rose
    significantly: its 95% interval lies above the baseline's and it grew at least 1.5x.
    Exit codes: 0 no regression, 1 regression, 2 bad input.
    """
    if fmt not in ("text", "json"):
        raise BadInput("--format must be one of text, json")
    comparison = api.compare(base_db, new_db, run_base=run_base, run_new=run_new)
    typer.echo(api.render_comparison(comparison, fmt), nl=False)
    raise typer.Exit(comparison.exit_code)
