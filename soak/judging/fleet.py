"""Many runs, many machines: merge their databases into one (``soak merge``) and summarize it per
finding and per target (``soak fleet``).

    import soak.judging.fleet
    soak.judging.fleet.merge("fleet.db", ["ci-1/soak.db", "ci-2/soak.db"])
    print(soak.judging.fleet.render(soak.judging.fleet.summarize("fleet.db"), "markdown"))
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field

from soak.errors import BadInput
from soak.model.finding import Frame
from soak.model.verdicts import LEAK, SUSPECT, VERDICTS
from soak.storage import open_database
from soak.storage.fleet import FleetFindingRow, fleet_findings, fleet_runs
from soak.storage.merge import InputResult, check_input, merge_into


def merge(out_path: str, inputs: list[str]) -> list[InputResult]:
    """Merge the finished runs of each input database into ``out_path`` (created if need be).

    Every input is checked before anything is written, and all of them are merged in one
    transaction (a new file is written beside and renamed): on a bad input, ``out_path`` is as it
    was. Merging an input again changes nothing. Raises BadInput with a one-line message.
    """
    if not inputs:
        raise BadInput("give at least one input database: soak merge OUT.db IN.db ...")
    out_real = os.path.realpath(out_path)
    for path in inputs:
        if os.path.realpath(path) == out_real:
            raise BadInput(f"{path!r} is the output; merge it into another file")
        check_input(path)
    if os.path.exists(out_path):
        db = open_database(out_path)
        try:
            return merge_into(db, inputs)
        finally:
            db.close()
    directory = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(directory):
        raise BadInput(f"cannot create {out_path!r}: directory {directory!r} does not exist")
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(out_path)}.", suffix=".merging")
    os.close(fd)
    os.unlink(temporary)  # open_database creates it, as a leaksoak database
    try:
        db = open_database(temporary)
        try:
            results = merge_into(db, inputs)
        finally:
            db.close()
        os.replace(temporary, out_path)
        return results
    finally:
        for leftover in (temporary, f"{temporary}-wal", f"{temporary}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


@dataclass(frozen=True)
class Growth:
    """Bytes per hour of a finding over the runs it appears in."""

    min: float | None
    median: float | None
    max: float | None


@dataclass(frozen=True)
class FleetFinding:
    """One finding id across the fleet: how many runs and hosts have it, and how fast it grows."""

    id: str
    """The stable finding id: the same allocation line on every machine."""
    kind: str
    verdict: str
    """The most severe verdict it has in any run."""
    where: Frame | None
    library: str | None
    resource: str | None
    runs: int
    hosts: int
    host_names: list[str]
    targets: list[str]
    verdicts: dict[str, int]
    """Runs in which it was a leak, and in which only suspect."""
    growth_bytes_per_hour: Growth


@dataclass(frozen=True)
class FleetRun:
    """A run of the fleet database, with where it came from."""

    id: int
    name: str
    target: str
    host: str | None
    status: str
    verdict: str
    started_at: str
    source_file: str | None
    """For a merged run: the database it was merged from, and its id there."""
    source_run_id: int | None


@dataclass(frozen=True)
class TargetVerdicts:
    """One target across the fleet: the hosts on which its runs were leak, suspect, clean or inconclusive."""

    target: str
    hosts: dict[str, list[str]]
    """verdict → hosts (sorted); a host with several runs of the target is listed under each verdict it had."""


@dataclass(frozen=True)
class Fleet:
    runs: list[FleetRun]
    findings: list[FleetFinding]
    """Most widespread first (hosts, then runs), then fastest growing."""
    targets: list[TargetVerdicts] = field(default_factory=list)


def summarize(db_path: str) -> Fleet:
    """The fleet summary of a database (merged by ``soak merge``, or any leaksoak database)."""
    db = open_database(db_path, create=False)
    try:
        run_rows, finding_rows = fleet_runs(db), fleet_findings(db)
    finally:
        db.close()
    from soak.storage.queries import effective_status

    runs = [FleetRun(id=row["id"], name=row["name"], target=row["target"], host=row["host"],
                     status=effective_status(row)[0], verdict=row["verdict"] or "inconclusive",
                     started_at=row["started_at"], source_file=row["source_file"], source_run_id=row["source_run_id"])
            for row in run_rows]
    return Fleet(runs, _findings(finding_rows), _targets(runs))


def _findings(rows: list[FleetFindingRow]) -> list[FleetFinding]:
    by_id: dict[str, list[FleetFindingRow]] = defaultdict(list)
    for row in rows:
        by_id[row["finding_id"]].append(row)
    findings = []
    for ident, group in by_id.items():
        per_run: dict[int, FleetFindingRow] = {}
        for row in group:  # one row per run: the first (highest ranked) if a run has it twice
            per_run.setdefault(row["run_id"], row)
        rates = sorted(r["growth_bytes_per_hour"] for r in per_run.values() if r["growth_bytes_per_hour"] is not None)
        first = group[0]
        hosts = sorted({r["host"] or "" for r in per_run.values()})
        verdicts = {v: sum(1 for r in per_run.values() if r["verdict"] == v) for v in (LEAK, SUSPECT)}
        findings.append(FleetFinding(
            id=ident, kind=first["kind"], verdict="leak" if verdicts["leak"] else "suspect",
            where=Frame.of(first) if first["file"] is not None else None,  # the frame of a finding with a stack
            library=first["library"], resource=first["resource"], runs=len(per_run), hosts=len(hosts),
            host_names=hosts, targets=sorted({r["target"] for r in per_run.values()}), verdicts=verdicts,
            growth_bytes_per_hour=Growth(rates[0], statistics.median(rates), rates[-1]) if rates else Growth(None, None, None),
        ))
    findings.sort(key=lambda f: (-f.hosts, -f.runs, f.verdict != "leak", -(f.growth_bytes_per_hour.median or 0.0), f.id))
    return findings


def _targets(runs: list[FleetRun]) -> list[TargetVerdicts]:
    hosts: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for run in runs:
        hosts[run.target][run.verdict].add(run.host or "")
    return [TargetVerdicts(target, {v: sorted(by[v]) for v in VERDICTS if v in by})
            for target, by in sorted(hosts.items())]
