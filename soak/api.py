"""The Python API that the CLI is a thin layer over.

    import soak.api as soak
    result = soak.run(soak.RunOptions("app/handlers.py:handle_one", duration_s=600, interval_s=5))
    print(soak.report("soak.db", str(result.run_id)))
"""

from __future__ import annotations

from typing import Any

from soak.analyzers import Thresholds
from soak.reports import build_report, render
from soak.reports.model import Report, effective_status
from soak.storage import open_database, queries
from soak.supervisor import Progress, RunOptions, RunResult, run

__all__ = ["Progress", "Report", "RunOptions", "RunResult", "Thresholds", "load_report", "report", "run", "runs"]


def load_report(db_path: str, run: str = "latest") -> Report:
    """The report model of a run (``run``: id, name, or ``latest``)."""
    db = open_database(db_path, create=False)
    try:
        return build_report(db, run)
    finally:
        db.close()


def report(db_path: str, run: str = "latest", *, fmt: str = "text") -> str:
    """A run's report rendered as ``text`` or ``json``."""
    return render(load_report(db_path, run), fmt)


def runs(db_path: str) -> list[dict[str, Any]]:
    """Every run in the database, oldest first, with its status as a reader sees it now."""
    db = open_database(db_path, create=False)
    try:
        rows = queries.list_runs(db)
    finally:
        db.close()
    for row in rows:
        row["status"], row["status_reason"] = effective_status(row)
    return rows
