"""Writing a run: one short transaction per snapshot, stacks and frames stored once."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from sqlite_utils import Database

from soak.errors import InternalFailure

Frame = tuple[str, int, str]
"""(file, line, function)"""


def utc_iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).isoformat(timespec="seconds")


def stack_hash(frames: Sequence[tuple[str, int]]) -> str:
    text = "\n".join(f"{file}:{line}" for file, line in frames)
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass(frozen=True)
class FindingRow:
    """A finding as stored; built by the supervisor from an analyzer's result."""

    finding_id: str
    kind: str
    verdict: str
    stack_id: int | None
    library: str | None
    resource: str | None
    growth_bytes_per_hour: float | None
    growth_count_per_hour: float | None
    p_value: float | None
    q_value: float | None
    confidence: float | None
    evidence: dict[str, Any]


class RunWriter:
    """Writes one run. Not thread-safe: the supervisor calls it from one thread at a time."""

    def __init__(self, db: Database, run_id: int, function_name: Callable[[str, int], str]) -> None:
        self.db = db
        self.run_id = run_id
        self._function_name = function_name
        self._worker_stacks: dict[int, int] = {}
        self._last: dict[int, tuple[int, int]] = {}
        self._frame_ids: dict[Frame, int] = {}

    @classmethod
    def create_run(
        cls,
        db: Database,
        *,
        name: str,
        target: str,
        mode: str,
        planned_duration_s: float | None,
        interval_s: float | None,
        options: dict[str, Any],
        function_name: Callable[[str, int], str],
        started_ts: float | None = None,
    ) -> "RunWriter":
        started = time.time() if started_ts is None else started_ts
        with _writing(db):
            with db.atomic():
                cursor = db.execute(
                    "INSERT INTO runs (name, target, mode, status, started_at, started_ts,"
                    " planned_duration_s, interval_s, supervisor_pid, host, options)"
                    " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                    [name, target, mode, utc_iso(started), started, planned_duration_s, interval_s,
                     os.getpid(), socket.gethostname(), json.dumps(options)],
                )
        assert cursor.lastrowid is not None
        return cls(db, cursor.lastrowid, function_name)

    def new_worker(self) -> None:
        """Stack ids are per worker process; forget the previous worker's."""
        self._worker_stacks.clear()

    def record_snapshot(self, seq: int, t_s: float, process: dict[str, Any], body: dict[str, Any]) -> None:
        """Store one snapshot and its site samples in a single transaction."""
        with _writing(self.db), self.db.atomic():
            self._store_stacks(body.get("new_stacks") or {})
            self.db.execute(
                "INSERT INTO snapshots (run_id, seq, t_s, worker_pid, iterations, rss, uss, fds, threads,"
                " traced_bytes, tracer_overhead_bytes, tracer, weight, gc_objects, gc_collections,"
                " asyncio_tasks, at_boundary, pause_ms, probe_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self.run_id, seq, t_s, body.get("pid"), body.get("iterations"),
                 process.get("rss"), process.get("uss"), process.get("fds"), process.get("threads"),
                 body.get("traced_bytes"), body.get("tracer_overhead_bytes"), body.get("tracer"),
                 body.get("weight"), body.get("gc_objects"), body.get("gc_collections"),
                 body.get("asyncio_tasks"), _bool(body.get("at_boundary")), body.get("pause_total_ms"),
                 json.dumps({**body.get("pause_ms", {}), "process": process.get("pause_ms")})],
            )
            self._store_samples(seq, body.get("sites") or [])
            self.db.execute(
                "UPDATE runs SET snapshots = snapshots + 1, duration_s = ?, iterations = ? WHERE id = ?",
                [t_s, body.get("iterations") or 0, self.run_id],
            )

    def _store_stacks(self, new_stacks: dict[str, list[list[Any]]]) -> None:
        for worker_id, frames in new_stacks.items():
            pairs = [(str(file), int(line)) for file, line in frames]
            digest = stack_hash(pairs)
            row = self.db.execute("SELECT id FROM stacks WHERE hash = ?", [digest]).fetchone()
            if row:
                stack_id = row[0]
            else:
                stack_id = self.db.execute(
                    "INSERT INTO stacks (hash, depth) VALUES (?, ?)", [digest, len(pairs)]
                ).lastrowid
                self.db.conn.executemany(
                    "INSERT INTO stack_frames (stack_id, position, frame_id) VALUES (?, ?, ?)",
                    [(stack_id, pos, self._frame_id(file, line)) for pos, (file, line) in enumerate(pairs)],
                )
            self._worker_stacks[int(worker_id)] = stack_id

    def _frame_id(self, file: str, line: int) -> int:
        key = (file, line, self._function_name(file, line))
        frame_id = self._frame_ids.get(key)
        if frame_id is None:
            self.db.execute("INSERT OR IGNORE INTO frames (file, line, function) VALUES (?, ?, ?)", key)
            frame_id = self.db.execute(
                "SELECT id FROM frames WHERE file = ? AND line = ? AND function = ?", key
            ).fetchone()[0]
            self._frame_ids[key] = frame_id
        return frame_id

    def _store_samples(self, seq: int, sites: Iterable[Sequence[int]]) -> None:
        rows = []
        seen: set[int] = set()
        for worker_id, size, count in sites:
            stack_id = self._worker_stacks[int(worker_id)]
            if stack_id in seen:  # two worker stacks can share a hash only across workers
                continue
            seen.add(stack_id)
            value = (int(size), int(count))
            if self._last.get(stack_id) != value:
                rows.append((self.run_id, stack_id, seq, *value))
                self._last[stack_id] = value
        for stack_id, value in list(self._last.items()):
            if stack_id not in seen and value != (0, 0):
                rows.append((self.run_id, stack_id, seq, 0, 0))
                self._last[stack_id] = (0, 0)
        self.db.conn.executemany(
            "INSERT INTO site_samples (run_id, stack_id, seq, bytes, count) VALUES (?, ?, ?, ?, ?)", rows
        )

    def record_event(self, t_s: float, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with _writing(self.db), self.db.atomic():
            self.db.execute(
                "INSERT INTO events (run_id, t_s, at, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                [self.run_id, t_s, utc_iso(), kind, message, json.dumps(data) if data else None],
            )

    def replace_findings(self, findings: Sequence[FindingRow], t_s: float) -> dict[str, float]:
        """Store the current findings, remembering when each was first detected.

        Returns finding_id → first detection time (seconds since start).
        """
        with _writing(self.db), self.db.atomic():
            for finding in findings:
                self.db.execute(
                    "INSERT OR IGNORE INTO detections (run_id, finding_id, first_detected_at_s) VALUES (?, ?, ?)",
                    [self.run_id, finding.finding_id, t_s],
                )
            detected = dict(
                self.db.execute(
                    "SELECT finding_id, first_detected_at_s FROM detections WHERE run_id = ?", [self.run_id]
                ).fetchall()
            )
            self.db.execute("DELETE FROM findings WHERE run_id = ?", [self.run_id])
            for rank, finding in enumerate(findings):
                row = asdict(finding)
                row["evidence"] = json.dumps(row["evidence"])
                self.db.execute(
                    "INSERT INTO findings (run_id, rank, detected_at_s, "
                    + ", ".join(row)
                    + ") VALUES (?, ?, ?, "
                    + ", ".join("?" for _ in row)
                    + ")",
                    [self.run_id, rank, detected[finding.finding_id], *row.values()],
                )
        return detected

    def set_verdict(self, verdict: str) -> None:
        with _writing(self.db), self.db.atomic():
            self.db.execute("UPDATE runs SET verdict = ? WHERE id = ?", [verdict, self.run_id])

    def finish(self, status: str, reason: str | None, duration_s: float) -> None:
        with _writing(self.db), self.db.atomic():
            self.db.execute(
                "UPDATE runs SET status = ?, status_reason = ?, ended_at = ?, duration_s = max(duration_s, ?)"
                " WHERE id = ?",
                [status, reason, utc_iso(), duration_s, self.run_id],
            )


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


class _writing:
    """Turn SQLite write errors into one-line leaksoak errors."""

    def __enter__(self) -> None:
        return None

    def __init__(self, db: Database) -> None:
        self.db = db

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if isinstance(exc, sqlite3.OperationalError):
            filename = self.db.conn.execute("PRAGMA database_list").fetchone()[2]
            raise InternalFailure(f"cannot write the database {filename!r}: {exc}") from exc
        return False
