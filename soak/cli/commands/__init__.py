"""One module per subcommand; each parses options, calls the Python API, and prints."""

from __future__ import annotations

import typer

from soak.cli.commands import ci, compare, export, fleet, merge, report, run, runs, suppress, version, watch


def register(app: typer.Typer) -> None:
    app.callback()(version.main_options)  # soak --version
    app.command("run")(run.run_command)
    app.command("watch")(watch.watch_command)
    app.command("report")(report.report_command)
    app.command("runs")(runs.runs_command)
    app.command("export")(export.export_command)
    app.command("ci")(ci.ci_command)
    app.command("compare")(compare.compare_command)
    app.command("suppress")(suppress.suppress_command)
    app.command("merge")(merge.merge_command)
    app.command("fleet")(fleet.fleet_command)
