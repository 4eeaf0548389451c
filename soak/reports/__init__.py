"""Reports: a model built from storage, and one renderer per format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from soak.judging.report_builder import build_report
from soak.model.report import Report

if TYPE_CHECKING:
    from sqlite_utils import Database

    from soak.judging.suppressions import Rule
    from soak.reports.series import ChartData

__all__ = ["FORMATS", "Report", "build_report", "load_report", "render"]

FORMATS = ("text", "json", "html", "markdown")


def load_report(db_path: str, run: str = "latest", rules: Sequence[Rule] | None = None) -> Report:
    """The report model of a run (``run``: id, name, or ``latest``) in the database at ``db_path``:
    with the decision its suppression rules made as stored, or judged afresh against ``rules``."""
    from soak.storage import open_database

    db = open_database(db_path, create=False)
    try:
        return judged_report(db, run, rules)
    finally:
        db.close()


def judged_report(db: Database, run: str = "latest", rules: Sequence[Rule] | None = None) -> Report:
    """:func:`build_report`, judged afresh against ``rules`` unless they are None."""
    report = build_report(db, run)
    if rules is None:
        return report
    from soak.judging.judgement import rejudge
    from soak.storage import queries

    return rejudge(report, [row["finding_id"] for row in queries.findings(db, report.run.id)], rules)


def render(report: Report, fmt: str, charts: ChartData | None = None) -> str:
    """``report`` as ``fmt``; ``charts`` are drawn by the ``html`` format only."""
    if fmt == "json":
        from soak.reports.json_report import render_json

        return render_json(report)
    if fmt == "html":
        from soak.reports.html import render_html

        return render_html(report, charts)
    if fmt == "markdown":
        from soak.reports.markdown import render_markdown

        return render_markdown(report)
    from soak.reports.text import render_text

    return render_text(report)
