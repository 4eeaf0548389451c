"""``soak suppress``: ready-to-edit suppression rules for a run's findings."""

from __future__ import annotations

import datetime
import sys

import typer

from soak import api
from soak.cli.commands.options import DB
from soak.errors import BadInput
from soak.judging.suppressions import generate_rules


def suppress_command(
    run: str = typer.Argument("latest", help="Run id, run name (newest of that name), or latest."),
    finding: list[str] = typer.Option(None, "--finding", help="Only this finding id (repeatable); default every finding."),
    db: str = DB,
) -> None:
    """Print ready-to-edit suppression rules for the run's findings, to paste into leaksoak.toml.

    Each rule matches its finding by its frames (a library finding by its library and call site) and expires three months out;
    its reason is a TODO, which a rules file does not accept.
    """
    report = api.load_report(db, run)
    findings = report.findings
    if finding:
        known = {f.finding_id for f in findings}
        missing = [ident for ident in finding if ident not in known]
        if missing:
            raise BadInput(f"run {report.run.id} has no finding {missing[0]!r}; its findings: "
                           + (", ".join(sorted(known)) or "none"))
        findings = [f for f in findings if f.finding_id in set(finding)]
    if not findings:
        print(f"soak suppress: run {report.run.id} has no findings: nothing to suppress", file=sys.stderr)
        return
    label = f"run {report.run.id} ({report.run.target})"
    sys.stdout.write(generate_rules(findings, today=datetime.date.today(), target=report.run.target, run_label=label))
