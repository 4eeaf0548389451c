"""Reading a fleet: every run of a (merged) database with where it came from, and every finding
with its run's host and its allocation line."""

from __future__ import annotations

from typing import Any, TypedDict, cast

from sqlite_utils import Database

from soak.storage.queries import _rows


class FleetFindingRow(TypedDict):
    """A stored finding of a run, with the run's host and target and the finding's allocation frame."""

    run_id: int
    finding_id: str
    kind: str
    verdict: str
    library: str | None
    resource: str | None
    growth_bytes_per_hour: float | None
    host: str | None
    target: str
    run_name: str
    file: str | None
    """The allocation frame's; None for a finding without a stack."""
    line: int | None
    function: str | None


def fleet_runs(db: Database) -> list[dict[str, Any]]:
    """Runs with their host and, for merged ones, the file and id they had on that host."""
    merged = "merged_runs" in db.table_names()
    source = "m.source_file, m.source_run_id" if merged else "NULL AS source_file, NULL AS source_run_id"
    join = " LEFT JOIN merged_runs m ON m.run_id = r.id" if merged else ""
    return _rows(db, f"SELECT r.*, {source} FROM runs r{join} ORDER BY r.target, r.host, r.id")


def fleet_findings(db: Database) -> list[FleetFindingRow]:
    """Every stored finding of every run that counts (no suppression rule of its run accepted
    it), with the run's host and target and the allocation frame."""
    counted = (" WHERE NOT EXISTS (SELECT 1 FROM accepted_findings a WHERE a.run_id = f.run_id AND a.finding_id = f.finding_id)"
               if "accepted_findings" in db.table_names() else "")
    return cast("list[FleetFindingRow]", _rows(
        db,
        "SELECT f.run_id, f.finding_id, f.kind, f.verdict, f.library, f.resource, f.growth_bytes_per_hour,"
        " r.host, r.target, r.name AS run_name, fr.file, fr.line, fr.function"
        " FROM findings f JOIN runs r ON r.id = f.run_id"
        " LEFT JOIN stack_frames sf ON sf.stack_id = f.stack_id AND sf.position = 0"
        " LEFT JOIN frames fr ON fr.id = sf.frame_id"
        f"{counted}"
        " ORDER BY f.finding_id, f.run_id, f.rank",
    ))
