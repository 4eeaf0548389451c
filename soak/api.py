"""The Python API that the CLI is a thin layer over.

    import soak.api as soak
    result = soak.run(soak.RunOptions("app/handlers.py:handle_one", duration_s=600, interval_s=5))
    print(soak.report("soak.db", str(result.run_id)))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from soak.analyzers import Thresholds
from soak.reports import build_report, render
from soak.reports.model import Report
from soak.storage import open_database, queries

if TYPE_CHECKING:
    from soak.supervisor import Progress, RunOptions, RunResult
    from soak.watch import WatchOptions


def run(
    options: "RunOptions",
    on_progress: "Callable[[Progress], None] | None" = None,
    on_start: "Callable[[RunOptions, int], None] | None" = None,
) -> "RunResult":
    """Soak a target (or resume a run) as ``soak run`` does; see :class:`soak.supervisor.RunOptions`."""
    from soak import supervisor  # the scheduler and the statistics load only when a run starts

    return supervisor.run(options, on_progress, on_start)


def watch(options: "WatchOptions", on_progress: "Callable[[Progress], None] | None" = None,
          on_start: "Callable[..., None] | None" = None) -> "RunResult":
    """Watch a running process as ``soak watch`` does; see :class:`soak.watch.WatchOptions`."""
    from soak import watch as watching

    return watching.watch(options, on_progress, on_start)


def __getattr__(name: str) -> object:
    if name in ("Progress", "RunOptions", "RunResult"):
        from soak import supervisor

        return getattr(supervisor, name)
    if name == "WatchOptions":
        from soak.watch import WatchOptions

        return WatchOptions
    raise AttributeError(name)

__all__ = ["Progress", "Report", "RunOptions", "RunResult", "Thresholds", "WatchOptions", "export", "load_report", "report", "run", "runs", "watch"]


def load_report(db_path: str, run: str = "latest") -> Report:
    """The report model of a run (``run``: id, name, or ``latest``)."""
    db = open_database(db_path, create=False)
    try:
        return build_report(db, run)
    finally:
        db.close()


def report(db_path: str, run: str = "latest", *, fmt: str = "text") -> str:
    """A run's report rendered as ``text``, ``json``, ``markdown`` or ``html`` (a page with charts)."""
    if fmt != "html":
        return render(load_report(db_path, run), fmt)
    from soak.reports.series import load_chart_data

    db = open_database(db_path, create=False)
    try:
        model = build_report(db, run)
        return render(model, fmt, load_chart_data(db, model))
    finally:
        db.close()


def export(db_path: str, run: str = "latest", *, fmt: str = "json", what: str = "snapshots") -> str:
    """A run's stored series and findings: ``json`` (everything) or ``csv`` (one table, ``what``)."""
    from soak.reports.export import export_csv, export_json

    db = open_database(db_path, create=False)
    try:
        return export_json(db, run) if fmt == "json" else export_csv(db, run, what)
    finally:
        db.close()


def runs(db_path: str) -> list[dict[str, Any]]:
    """Every run in the database, oldest first, with its status as a reader sees it now."""
    db = open_database(db_path, create=False)
    try:
        rows = queries.list_runs(db)
    finally:
        db.close()
    for row in rows:
        row["status"], row["status_reason"] = queries.effective_status(row)
    return rows
