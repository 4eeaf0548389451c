"""``soak report``: the leak report of a run, during or after it."""

from __future__ import annotations

import typer

from soak import api
from soak.cli.commands.options import DB, FORMAT, FORMATS, print_warnings
from soak.errors import BadInput
from soak.reports.output import write_output


def report_command(
    db: str = DB,
    run: str = typer.Option("latest", "--run", "-r", help="Run id, run name (newest of that name), or latest."),
    fmt: str = FORMAT,
    output: str = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    suppressions: str | None = typer.Option(
        None, "--suppressions",
        help="Judge the run afresh against the rules of this file (leaksoak.toml, pyproject.toml or any"
        " \\[\\[suppress]] file) instead of showing the decision stored with it.",
    ),
) -> None:
    """Print the report of a run: verdict, then each finding with its growth rate, line and traceback.

    Findings the run's suppression rules accepted are shown apart; the verdict leaves them out.
    """
    if fmt not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}")
    rules = api.suppression_rules(suppressions) if suppressions is not None else None
    model = api.load_report(db, run, rules=rules)
    write_output(api.render_report(db, model, fmt), output)
    if rules is not None:
        print_warnings(model.suppression_warnings)
