"""Reports: a model built from storage, and one renderer per format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from soak.reports.model import Report, build_report

if TYPE_CHECKING:
    from soak.reports.series import ChartData

__all__ = ["FORMATS", "Report", "build_report", "load_report", "render"]

FORMATS = ("text", "json", "html", "markdown")


def load_report(db_path: str, run: str = "latest") -> Report:
    """The report model of a run (``run``: id, name, or ``latest``) in the database at ``db_path``."""
    from soak.storage import open_database

    db = open_database(db_path, create=False)
    try:
        return build_report(db, run)
    finally:
        db.close()


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
