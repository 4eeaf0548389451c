"""Options shared by several subcommands."""

from __future__ import annotations

import typer

DB = typer.Option("soak.db", "--db", help="SQLite file holding the runs; many runs share one file.")
FORMAT = typer.Option("text", "--format", "-f", help="text or json (schema leaksoak.report/1).")
FORMATS = ("text", "json")
