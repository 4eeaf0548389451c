"""The Python API that the CLI is a thin layer over.

    import soak.api as soak
    result = soak.run(soak.RunOptions("app/handlers.py:handle_one", duration_s=600, interval_s=5))
    print(soak.report("soak.db", str(result.run_id)))
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from soak import reports
from soak.analyzers import Thresholds
from soak.model.options import CiOptions, RunOptions, WatchOptions
from soak.model.report import Report
from soak.reports import render
from soak.storage import open_database, queries

if TYPE_CHECKING:
    from soak.judging.compare import Comparison
    from soak.judging.suppressions import Rule
    from soak.storage.merge import InputResult
    from soak.supervisor.ci import CiResult, TargetResult
    from soak.supervisor.results import Progress, RunResult


def run(options: RunOptions, on_progress: Callable[[Progress], None] | None = None,
        on_start: Callable[[RunOptions, int], None] | None = None, *, given: Collection[str] | None = None) -> RunResult:
    """Soak a target (or resume a run) as ``soak run`` does; see :class:`soak.model.options.RunOptions`.
    Resuming, ``given`` names the options to apply (by default, those unlike their defaults); one
    that the run keeps as it started (its tracer, interval...) is refused: see :mod:`soak.supervisor.resume`.

    Callable from any thread; signal handlers and logging levels are put back when it returns.
    Only on the main thread do SIGINT and SIGTERM end the run early (Python lets no other thread
    install a handler); see :func:`soak.supervisor.runner.run`."""
    from soak.supervisor import runner as supervisor  # the scheduler and the statistics load only when a run starts

    return supervisor.run(options, on_progress, on_start, given=given)


def watch(options: WatchOptions, on_progress: Callable[[Progress], None] | None = None,
          on_start: Callable[..., None] | None = None) -> RunResult:
    """Watch a running process as ``soak watch`` does; see :class:`soak.model.options.WatchOptions`."""
    from soak.supervisor import watch as watching

    return watching.watch(options, on_progress, on_start)


def __getattr__(name: str) -> object:
    if name in ("Progress", "RunResult"):
        from soak.supervisor import results

        return getattr(results, name)
    if name == "CiResult":
        from soak.supervisor import ci as ci_module

        return getattr(ci_module, name)
    raise AttributeError(name)

__all__ = ["CiOptions", "CiResult", "Progress", "Report", "RunOptions", "RunResult", "Thresholds", "WatchOptions",
           "ci", "compare", "export", "fleet", "load_report", "merge", "render_comparison", "render_report", "report", "run", "runs",
           "suppression_rules", "watch"]


def ci(options: CiOptions, on_start: Callable[[int, int, str], None] | None = None,
       on_done: Callable[[int, int, TargetResult], None] | None = None) -> CiResult:
    """Soak each target in turn as ``soak ci`` does, write the JUnit XML and the Markdown summary
    it asks for, and judge it against its baseline; see :class:`soak.model.options.CiOptions`."""
    from soak.supervisor import ci as ci_module

    return ci_module.run_ci(options, on_start, on_done)


def compare(base_db: str, new_db: str, *, run_base: str | None = None, run_new: str | None = None) -> Comparison:
    """Compare runs of ``new_db`` with the same targets' runs in ``base_db``; see :mod:`soak.judging.compare`."""
    from soak.judging import compare as comparing

    return comparing.compare(base_db, new_db, run_base=run_base, run_new=run_new)


def render_comparison(comparison: Comparison, fmt: str = "text") -> str:
    """A comparison as ``text`` or ``json`` (schema ``leaksoak.compare/1``)."""
    from soak.reports.comparison import render_comparison as render_it

    return render_it(comparison, fmt)


def load_report(db_path: str, run: str = "latest", *, rules: Sequence[Rule] | None = None) -> Report:
    """The report model of a run (``run``: id, name, or ``latest``), with the decision of the
    suppression rules it ran with, or judged afresh against ``rules`` (see :func:`suppression_rules`)."""
    return reports.load_report(db_path, run, rules)


def suppression_rules(path: str | None = None) -> list[Rule]:
    """The rules of a rules file, or of ``leaksoak.toml`` and ``pyproject.toml`` in the current
    directory; raises BadInput (one line: file, line, problem) for a malformed one."""
    from soak.judging.suppressions import load_rules

    return load_rules(path)


def report(db_path: str, run: str = "latest", *, fmt: str = "text", rules: Sequence[Rule] | None = None) -> str:
    """A run's report rendered as ``text``, ``json``, ``markdown`` or ``html`` (a page with charts),
    judged afresh against ``rules`` when they are given."""
    return render_report(db_path, load_report(db_path, run, rules=rules), fmt)


def render_report(db_path: str, model: Report, fmt: str = "text") -> str:
    """A report model rendered as ``fmt``; the ``html`` format reads its charts from ``db_path``."""
    if fmt != "html":
        return render(model, fmt)
    from soak.reports.series import load_chart_data

    db = open_database(db_path, create=False)
    try:
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


def merge(out_db: str, inputs: list[str]) -> list[InputResult]:
    """Merge the finished runs of ``inputs`` into ``out_db`` as ``soak merge`` does; see :func:`soak.judging.fleet.merge`."""
    from soak.judging import fleet

    return fleet.merge(out_db, inputs)


def fleet(db_path: str, *, fmt: str = "text") -> str:
    """The fleet summary of a (merged) database as ``text``, ``json`` (``leaksoak.fleet/1``), ``markdown`` or ``html``."""
    from soak.judging.fleet import summarize
    from soak.reports.fleet import render_fleet

    return render_fleet(summarize(db_path), fmt)
