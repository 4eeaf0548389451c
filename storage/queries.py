"""Reading runs back: run lookup, snapshot and site series (sparse rows carried forward), findings."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import psutil
from sqlite_utils import Database

from soak.errors import BadInput
from soak.model.finding import Evidence, Frame, StoredFinding
from soak.model.report import Event
from soak.storage.schema import AcceptedRow, RuleRow


@dataclass(frozen=True)
class SiteSeries:
    """One allocation site's live bytes and blocks on the run's snapshot grid."""

    stack_id: int
    bytes: np.ndarray
    counts: np.ndarray
    samples: np.ndarray | None = None
    """Live sampled blocks behind each estimate, when a sampled tracer ran (None: exact values)."""


def find_run(db: Database, selector: str = "latest") -> dict[str, Any]:
    """A run by id, by name (the newest of that name), or ``latest``."""
    if selector == "latest":  # a process of a watched tree is reported with its root's run
        rows = _rows(db, "SELECT * FROM runs WHERE parent_run_id IS NULL ORDER BY id DESC LIMIT 1")
        if not rows:
            raise BadInput("the database holds no runs yet; start one with `soak run`")
    elif selector.isdigit():
        rows = _rows(db, "SELECT * FROM runs WHERE id = ?", [int(selector)])
    else:
        rows = _rows(db, "SELECT * FROM runs WHERE name = ? ORDER BY id DESC LIMIT 1", [selector])
    if not rows:
        raise BadInput(f"no run {selector!r} in this database; `soak runs` lists them")
    return rows[0]


def effective_status(run: dict[str, Any]) -> tuple[str, str | None]:
    """A run still marked running whose supervisor is gone from this host was killed.

    A pid can be reused: a process of that pid started after the supervisor did is another one.
    """
    if run["status"] != "running":
        return run["status"], run["status_reason"]
    pid, host = run.get("supervisor_pid"), run.get("host")
    if not pid or host != socket.gethostname() or pid == os.getpid():
        return "running", None
    try:
        alive = psutil.Process(pid).create_time() <= (run.get("supervisor_started_ts") or float("inf")) + 1
    except psutil.NoSuchProcess:
        alive = False
    if alive:
        return "running", None
    return "killed", "the supervisor process is gone without ending the run"


def latest_completed_runs(db: Database, exclude: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """The newest completed run of each target, by target text, leaving out the runs ``exclude``."""
    if "runs" not in db.table_names():
        return {}
    excluded = list(exclude or [])
    unless = f" AND id NOT IN ({','.join('?' for _ in excluded)})" if excluded else ""
    rows = _rows(
        db,
        f"SELECT * FROM runs WHERE id IN (SELECT max(id) FROM runs WHERE status = 'completed' AND parent_run_id IS NULL{unless}"
        " GROUP BY target)"
        " ORDER BY id",
        excluded,
    )
    return {row["target"]: row for row in rows}


def list_runs(db: Database) -> list[dict[str, Any]]:
    return _rows(db, "SELECT * FROM runs ORDER BY id")


def tree_runs(db: Database, run_id: int) -> list[dict[str, Any]]:
    """The runs of the processes of a watched tree whose root is run ``run_id``, oldest first."""
    return _rows(db, "SELECT * FROM runs WHERE parent_run_id = ? ORDER BY id", [run_id])


def probe_pauses(snapshot: dict[str, Any]) -> dict[str, float | None]:
    """A snapshot row's ``probe_ms``: each probe that ran on it, with its cost in ms (the
    supervisor's own readings under ``storage.schema.OUTSIDE_PROBE``)."""
    stored = snapshot.get("probe_ms")
    return cast("dict[str, float | None]", json.loads(stored)) if stored else {}


def snapshots(db: Database, run_id: int) -> list[dict[str, Any]]:
    return _rows(db, "SELECT * FROM snapshots WHERE run_id = ? ORDER BY seq", [run_id])


def site_series(db: Database, run_id: int, seqs: np.ndarray) -> list[SiteSeries]:
    """Every site's series on the grid ``seqs`` (snapshot sequence numbers, ascending).

    A site is 0 before its first row; after that each row's value holds until the next row.
    """
    rows = db.execute(
        "SELECT stack_id, seq, bytes, count, coalesce(samples, -1) FROM site_samples WHERE run_id = ?"
        " ORDER BY stack_id, seq",
        [run_id],
    ).fetchall()
    if not rows or len(seqs) == 0:
        return []
    data = np.asarray(rows, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, data[1:, 0] != data[:-1, 0]])
    ends = np.r_[starts[1:], len(data)]
    result = []
    for start, end in zip(starts, ends, strict=True):
        block = data[start:end]
        values = _carry_forward(block[:, 1], block[:, 2:], seqs)
        sampled = (block[:, 4] >= 0).all()  # sampled throughout (an exact segment stores NULL)
        result.append(SiteSeries(stack_id=int(block[0, 0]), bytes=values[:, 0], counts=values[:, 1],
                                 samples=values[:, 2] if sampled else None))
    return result


@dataclass(frozen=True)
class ProbeSeries:
    """One probe series of a run on a snapshot grid, with the latest evidence its probe gave."""

    series_id: int
    probe: str
    name: str
    unit: str
    kind: str
    values: np.ndarray
    evidence: Evidence


def probe_series(db: Database, run_id: int, seqs: np.ndarray) -> list[ProbeSeries]:
    """Every probe series of a run on the grid ``seqs``: 0 before its first row, then each row's
    value holds until the next."""
    if "probe_values" not in db.table_names() or len(seqs) == 0:
        return []
    rows = db.execute(
        "SELECT series_id, seq, value FROM probe_values WHERE run_id = ? ORDER BY series_id, seq", [run_id]
    ).fetchall()
    if not rows:
        return []
    described = {
        row[0]: row[1:] for row in db.execute(
            "SELECT s.id, s.probe, s.name, s.unit, s.kind, e.evidence FROM probe_series s"
            " LEFT JOIN probe_evidence e ON e.series_id = s.id AND e.run_id = ?"
            " WHERE s.id IN (SELECT DISTINCT series_id FROM probe_values WHERE run_id = ?)", [run_id, run_id])
    }
    data = np.asarray(rows, dtype=float)
    starts = np.flatnonzero(np.r_[True, data[1:, 0] != data[:-1, 0]])
    ends = np.r_[starts[1:], len(data)]
    result = []
    for start, end in zip(starts, ends, strict=True):
        block = data[start:end]
        series_id = int(block[0, 0])
        probe, name, unit, kind, evidence = described[series_id]
        values = _carry_forward(block[:, 1].astype(np.int64), block[:, 2:], seqs)[:, 0]
        result.append(ProbeSeries(series_id, probe, name, unit, kind, values, json.loads(evidence) if evidence else {}))
    return result


def site_samples(db: Database, run_id: int, *, with_frames: bool = False) -> list[dict[str, Any]]:
    """The stored (sparse) site samples of a run, with the snapshot time; optionally the allocation line."""
    if with_frames:
        return _rows(
            db,
            "SELECT s.seq, n.t_s, s.stack_id, f.file, f.line, f.function, s.bytes, s.count FROM site_samples s"
            " JOIN snapshots n ON n.run_id = s.run_id AND n.seq = s.seq"
            " LEFT JOIN stack_frames sf ON sf.stack_id = s.stack_id AND sf.position = 0"
            " LEFT JOIN frames f ON f.id = sf.frame_id"
            " WHERE s.run_id = ? ORDER BY s.seq, s.stack_id",
            [run_id],
        )
    return _rows(
        db,
        "SELECT s.seq, n.t_s, s.stack_id, s.bytes, s.count FROM site_samples s"
        " JOIN snapshots n ON n.run_id = s.run_id AND n.seq = s.seq WHERE s.run_id = ? ORDER BY s.stack_id, s.seq",
        [run_id],
    )


def site_series_of(db: Database, run_id: int, stack_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One site's (times, bytes, counts) on the run's snapshot grid."""
    grid = db.execute("SELECT seq, t_s FROM snapshots WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()
    if not grid:
        empty = np.zeros(0)
        return empty, empty, empty
    seqs = np.array([row[0] for row in grid], dtype=np.int64)
    times = np.array([row[1] for row in grid], dtype=float)
    rows = db.execute(
        "SELECT seq, bytes, count FROM site_samples WHERE run_id = ? AND stack_id = ? ORDER BY seq", [run_id, stack_id]
    ).fetchall()
    if not rows:
        zeros = np.zeros(len(seqs), dtype=np.int64)
        return times, zeros, zeros
    data = np.asarray(rows, dtype=np.int64)
    values = _carry_forward(data[:, 0], data[:, 1:], seqs)
    return times, values[:, 0], values[:, 1]


def _carry_forward(sample_seqs: np.ndarray, values: np.ndarray, seqs: np.ndarray) -> np.ndarray:
    """Every value column at each of ``seqs``: the last sample at or before it, else 0."""
    index = np.searchsorted(sample_seqs, seqs, side="right") - 1
    return np.where((index >= 0)[:, None], values[np.clip(index, 0, None)], 0)


def stack_frames(db: Database, stack_ids: list[int]) -> dict[int, list[Frame]]:
    """Frames of each stack, allocation frame first."""
    frames: dict[int, list[Frame]] = {stack_id: [] for stack_id in stack_ids}
    ids = list(frames)
    for start in range(0, len(ids), 900):  # SQLite builds before 3.32 allow 999 parameters
        chunk = ids[start:start + 900]
        rows = db.execute(
            "SELECT sf.stack_id, f.file, f.line, f.function FROM stack_frames sf JOIN frames f ON f.id = sf.frame_id"
            f" WHERE sf.stack_id IN ({','.join('?' for _ in chunk)}) ORDER BY sf.stack_id, sf.position",
            chunk,
        ).fetchall()
        for stack_id, file, line, function in rows:
            frames[stack_id].append(Frame(file, line, function))
    return frames


def findings(db: Database, run_id: int) -> list[StoredFinding]:
    """The run's rows of the ``findings`` table, most severe first, as stored (the evidence as
    JSON text): :meth:`soak.model.finding.Finding.from_row` reads a finding back from one."""
    return cast("list[StoredFinding]", _rows(db, "SELECT * FROM findings WHERE run_id = ? ORDER BY rank", [run_id]))


def suppression_rules(db: Database, run_id: int) -> list[RuleRow]:
    """The suppression rules last judged against the run's findings, in their order (none before 0007)."""
    if "suppression_rules" not in db.table_names():
        return []
    return cast("list[RuleRow]", _rows(db, "SELECT * FROM suppression_rules WHERE run_id = ? ORDER BY position", [run_id]))


def accepted_findings(db: Database, run_id: int) -> dict[str, AcceptedRow]:
    """finding_id → the rule that accepted it and the growth it accepted."""
    if "accepted_findings" not in db.table_names():
        return {}
    rows = cast("list[AcceptedRow]", _rows(db, "SELECT * FROM accepted_findings WHERE run_id = ?", [run_id]))
    return {row["finding_id"]: row for row in rows}


def type_growth(db: Database, run_id: int, limit: int = 15) -> list[dict[str, Any]]:
    """Types whose live object count grew most from the run's first census to its last.

    Type samples are sparse like site samples: a type first stored after the first census
    had no live objects before it. Rows: ``name``, ``first``, ``last``, ``change``.
    """
    rows = _rows(
        db,
        "WITH bounds AS (SELECT min(seq) AS first_seq FROM type_samples WHERE run_id = ?),"
        " ends AS (SELECT type_id, min(seq) AS lo, max(seq) AS hi FROM type_samples WHERE run_id = ? GROUP BY type_id)"
        " SELECT t.name,"
        "  CASE WHEN e.lo = (SELECT first_seq FROM bounds) THEN a.count ELSE 0 END AS first,"
        "  b.count AS last"
        " FROM ends e JOIN types t ON t.id = e.type_id"
        " JOIN type_samples a ON a.run_id = ? AND a.type_id = e.type_id AND a.seq = e.lo"
        " JOIN type_samples b ON b.run_id = ? AND b.type_id = e.type_id AND b.seq = e.hi",
        [run_id, run_id, run_id, run_id],
    )
    if not rows and "probe_values" in db.table_names():  # since the census is a probe (soak.inprocess.probes.types)
        rows = _rows(
            db,
            "WITH census AS (SELECT v.series_id, v.seq, v.value FROM probe_values v"
            "  JOIN probe_series s ON s.id = v.series_id WHERE v.run_id = ? AND s.probe = 'types'),"
            " ends AS (SELECT series_id, min(seq) AS lo, max(seq) AS hi FROM census GROUP BY series_id)"
            # the probe's values are growth since its first census, whose counts are its evidence
            " SELECT s.name, CAST(coalesce(json_extract(x.evidence, '$.objects_at_first_census'), 0) AS INTEGER) AS first,"
            "  CAST(coalesce(json_extract(x.evidence, '$.objects_at_first_census'), 0) + b.value AS INTEGER) AS last"
            " FROM ends e JOIN probe_series s ON s.id = e.series_id"
            " JOIN census b ON b.series_id = e.series_id AND b.seq = e.hi"
            " LEFT JOIN probe_evidence x ON x.run_id = ? AND x.series_id = e.series_id",
            [run_id, run_id],
        )
    for row in rows:
        row["change"] = row["last"] - row["first"]
    rows.sort(key=lambda row: (-row["change"], row["name"]))
    return [row for row in rows if row["change"] > 0][:limit]


def holders(db: Database, run_id: int) -> dict[str, Evidence]:
    """The latest holder evidence of each subject searched in the run (``type:<name>`` or
    ``site:<stack id>``), with the segment that searched it."""
    if "holders" not in db.table_names():
        return {}
    return {subject if stack_id is None else f"site:{stack_id}": {**json.loads(evidence), "segment": segment}
            for subject, stack_id, segment, evidence in db.execute(
                "SELECT subject, stack_id, segment, evidence FROM holders WHERE run_id = ? ORDER BY id", [run_id])}


def events(db: Database, run_id: int) -> list[Event]:
    return cast("list[Event]", _rows(db, "SELECT * FROM events WHERE run_id = ? ORDER BY t_s, id", [run_id]))


def _rows(db: Database, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cursor = db.execute(sql, params or [])
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
