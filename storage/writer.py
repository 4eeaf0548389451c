"""Writing a run: one short transaction per snapshot, stacks and frames stored once."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

import psutil
from sqlite_utils import Database

from soak.errors import InternalFailure
from soak.model.finding import Finding
from soak.model.report import RunSummary
from soak.storage.database import write_transaction
from soak.storage.schema import OUTSIDE_PROBE, AcceptedRow, RuleRow

Frame = tuple[str, int, str]
"""(file, line, function)"""


def utc_iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).isoformat(timespec="seconds")


def stack_hash(frames: Sequence[tuple[str, int]]) -> str:
    text = "\n".join(f"{file}:{line}" for file, line in frames)
    return hashlib.sha1(text.encode()).hexdigest()


class RunWriter:
    """Writes one run. Not thread-safe: the supervisor calls it from one thread at a time."""

    def __init__(self, db: Database, run_id: int, function_name: Callable[[str, int], str]) -> None:
        self.db = db
        self.run_id = run_id
        self.name = db.execute("SELECT name FROM runs WHERE id = ?", [run_id]).fetchone()[0]
        self.segment = 0
        self.next_seq = 0
        self._function_name = function_name
        self._worker_stacks: dict[int, int] = {}
        self._last: dict[int, tuple[int, int, int | None]] = {}
        self._last_types: dict[int, int] = {}
        self._last_probe_values: dict[str, dict[int, float]] = {}  # per probe: series id → value
        self._last_evidence: dict[int, str] = {}
        self._series_ids: dict[tuple[str, str, str], int] = {}
        self._type_ids: dict[str, int] = {}
        self._frame_ids: dict[tuple[str, int], int] = {}  # (file, line): a line's function is looked up once

    @classmethod
    def resume(cls, db: Database, run_id: int, function_name: Callable[[str, int], str], supervisor_pid: int) -> RunWriter:
        """Continue a stopped run in a new segment: sequence numbers and sparse values carry on."""
        writer = cls(db, run_id, function_name)
        seq, segment = db.execute(
            "SELECT max(seq), max(segment) FROM snapshots WHERE run_id = ?", [run_id]
        ).fetchone()
        writer.next_seq = 0 if seq is None else seq + 1
        writer.segment = 0 if segment is None else segment + 1
        latest = (
            "SELECT {key}, {values} FROM {table} t WHERE run_id = ? AND seq = "
            "(SELECT max(seq) FROM {table} WHERE run_id = t.run_id AND {key} = t.{key})"
        )
        for stack_id, size, count, samples in db.execute(
                latest.format(key="stack_id", values="bytes, count, samples", table="site_samples"), [run_id]):
            writer._last[stack_id] = (size, count, samples)
        for type_id, count in db.execute(latest.format(key="type_id", values="count", table="type_samples"), [run_id]):
            writer._last_types[type_id] = count
        probes = dict(db.execute("SELECT id, probe FROM probe_series").fetchall())
        for series_id, value in db.execute(latest.format(key="series_id", values="value", table="probe_values"), [run_id]):
            writer._last_probe_values.setdefault(probes[series_id], {})[series_id] = value
        with _writing(db), write_transaction(db):
            db.execute(
                "UPDATE runs SET status = 'running', status_reason = NULL, ended_at = NULL, supervisor_pid = ?,"
                " supervisor_started_ts = ?, host = ? WHERE id = ?",
                [supervisor_pid, _process_start(), socket.gethostname(), run_id],
            )
        return writer

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
        parent_run_id: int | None = None,
        pid: int | None = None,
    ) -> RunWriter:
        """A new run. ``parent_run_id``: a process of a watched tree, the run of its root; ``pid``:
        the process a run of a tree watches."""
        started = time.time() if started_ts is None else started_ts
        with _writing(db):
            with write_transaction(db):
                cursor = db.execute(
                    "INSERT INTO runs (name, target, mode, status, started_at, started_ts,"
                    " planned_duration_s, interval_s, supervisor_pid, supervisor_started_ts, host, options,"
                    " parent_run_id, pid)"
                    " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [name, target, mode, utc_iso(started), started, planned_duration_s, interval_s,
                     os.getpid(), _process_start(), socket.gethostname(), json.dumps(options), parent_run_id, pid],
                )
        assert cursor.lastrowid is not None
        return cls(db, cursor.lastrowid, function_name)

    _worker_iterations = 0

    def start_segment(self) -> None:
        """The measured process was replaced (a watched service restarted): a new segment."""
        self.segment += 1
        self.new_worker()

    def new_worker(self) -> None:
        """Stack ids and call counts are per worker process; forget the previous worker's."""
        self._worker_stacks.clear()
        self._worker_iterations = 0

    def record_snapshot(self, t_s: float, process: dict[str, Any], body: dict[str, Any]) -> int:
        """Store one snapshot with its site and type samples in a single transaction.

        Returns its sequence number. Once this returns, the snapshot is durable.
        """
        seq = self.next_seq
        # Naming new frames reads source or bytecode files: done before the write lock is taken, so
        # that runs sharing the database do not wait on this one's file reads.
        stacks, names = self._prepare_stacks(body.get("new_stacks") or {})
        with _writing(self.db), write_transaction(self.db):
            self._store_stacks(stacks, names)
            self.db.execute(
                "INSERT INTO snapshots (run_id, seq, segment, t_s, worker_pid, iterations, rss, uss, pss, fds, threads,"
                " cgroup_bytes, cgroup_limit, traced_bytes, tracer_overhead_bytes, tracer, weight, gc_objects,"
                " gc_collections, asyncio_tasks, at_boundary, pause_ms, probe_ms, sample_interval)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self.run_id, seq, self.segment, t_s, body.get("pid"), body.get("iterations"),
                 process.get("rss"), process.get("uss"), process.get("pss"), process.get("fds"), process.get("threads"),
                 process.get("cgroup_bytes"), process.get("cgroup_limit"),
                 body.get("traced_bytes"), body.get("tracer_overhead_bytes"), body.get("tracer"),
                 body.get("weight"), body.get("gc_objects"), body.get("gc_collections"),
                 body.get("asyncio_tasks"), _bool(body.get("at_boundary")), body.get("pause_total_ms"),
                 json.dumps({**body.get("pause_ms", {}), OUTSIDE_PROBE: process.get("pause_ms")}),
                 body.get("sample_interval")],
            )
            if "sites" in body:  # a process-level reading says nothing of the sites: they carry forward
                self._store_samples(seq, body["sites"])
            if "types" in body:  # the census runs on some snapshots only; the rest carry forward
                self._store_types(seq, body["types"])
            self._store_probes(seq, body.get("probes") or {})
            if body.get("holders"):
                self._store_holders(seq, body["holders"])
            self.db.execute(
                "UPDATE runs SET snapshots = snapshots + 1, duration_s = ?, iterations = iterations + ? WHERE id = ?",
                [t_s, max(0, (body.get("iterations") or 0) - self._worker_iterations), self.run_id],
            )
        self._worker_iterations = body.get("iterations") or 0
        self.next_seq = seq + 1
        return seq

    def _prepare_stacks(
        self, new_stacks: dict[str, list[list[Any]]],
    ) -> tuple[list[tuple[int, list[tuple[str, int]], str, int | None]], dict[tuple[str, int], str]]:
        """(worker id, frames, hash, stored id or None) of each new stack, and the function names
        of the frames of those not stored yet. A stack a resumed or restarted worker sends again is
        found by its hash and not named again (stacks are never deleted)."""
        stacks: list[tuple[int, list[tuple[str, int]], str, int | None]] = []
        names: dict[tuple[str, int], str] = {}
        with _writing(self.db):
            for worker_id, frames in new_stacks.items():  # JSON object keys are strings
                pairs = [(str(file), int(line)) for file, line in frames]
                digest = stack_hash(pairs)
                stored = self._stack_id(digest)
                stacks.append((int(worker_id), pairs, digest, stored))
                if stored is None:
                    for key in pairs:
                        if key not in self._frame_ids and key not in names:
                            names[key] = self._function_name(*key)
        return stacks, names

    def _stack_id(self, digest: str) -> int | None:
        row = self.db.execute("SELECT id FROM stacks WHERE hash = ?", [digest]).fetchone()
        return row[0] if row else None

    def _store_stacks(self, stacks: list[tuple[int, list[tuple[str, int]], str, int | None]],
                      names: dict[tuple[str, int], str]) -> None:
        for worker_id, pairs, digest, stored in stacks:
            # Looked up again under the lock: another run sharing the file may have stored it since.
            stack_id = stored if stored is not None else self._stack_id(digest)
            if stack_id is None:
                stack_id = self.db.execute(
                    "INSERT INTO stacks (hash, depth) VALUES (?, ?)", [digest, len(pairs)]
                ).lastrowid
                assert stack_id is not None  # the row id of the INSERT
                self.db.conn.executemany(
                    "INSERT INTO stack_frames (stack_id, position, frame_id) VALUES (?, ?, ?)",
                    [(stack_id, pos, self._frame_id(file, line, names)) for pos, (file, line) in enumerate(pairs)],
                )
            self._worker_stacks[worker_id] = stack_id

    def _frame_id(self, file: str, line: int, names: dict[tuple[str, int], str]) -> int:
        frame_id = self._frame_ids.get((file, line))
        if frame_id is None:
            key: Frame = (file, line, names[(file, line)])
            self.db.execute("INSERT OR IGNORE INTO frames (file, line, function) VALUES (?, ?, ?)", key)
            frame_id = self.db.execute(
                "SELECT id FROM frames WHERE file = ? AND line = ? AND function = ?", key
            ).fetchone()[0]
            self._frame_ids[(file, line)] = frame_id
        return frame_id

    def _store_samples(self, seq: int, sites: Iterable[Sequence[int]]) -> None:
        # One pass over thousands of sites per snapshot: this loop is the writer's hot path.
        stacks, last, run_id = self._worker_stacks, self._last, self.run_id
        rows = []
        present = set()
        for site in sites:  # [worker stack id, bytes, count] and, from a sampled tracer, samples
            stack_id = stacks[site[0]]
            present.add(stack_id)
            value = (site[1], site[2], site[3] if len(site) > 3 else None)
            if last.get(stack_id) != value:
                last[stack_id] = value
                rows.append((run_id, stack_id, seq, *value))
        if len(present) < len(last):
            for stack_id, value in last.items():
                if stack_id not in present and value[:2] != (0, 0):
                    rows.append((run_id, stack_id, seq, 0, 0, None if value[2] is None else 0))
            for row in rows:
                last[row[1]] = (row[3], row[4], row[5])
        self.db.conn.executemany(
            "INSERT INTO site_samples (run_id, stack_id, seq, bytes, count, samples) VALUES (?, ?, ?, ?, ?, ?)", rows
        )

    def _store_types(self, seq: int, types: Iterable[Sequence[Any]]) -> None:
        current: dict[int, int] = {}
        for name, count in types:
            type_id = self._type_ids.get(name)
            if type_id is None:
                self.db.execute("INSERT OR IGNORE INTO types (name) VALUES (?)", [name])
                type_id = self.db.execute("SELECT id FROM types WHERE name = ?", [name]).fetchone()[0]
                self._type_ids[name] = type_id
            current[type_id] = int(count)
        self.db.conn.executemany(
            "INSERT INTO type_samples (run_id, type_id, seq, count) VALUES (?, ?, ?, ?)",
            [(self.run_id, type_id, seq, count) for type_id, count in _changes(self._last_types, current, 0)],
        )

    def _store_probes(self, seq: int, probes: dict[str, dict[str, Any]]) -> None:
        """Each probe's series (see soak.inprocess.probes.probe.run_probes); a probe that failed carries forward."""
        for probe, entry in probes.items():
            if "series" not in entry:
                continue
            current: dict[int, float] = {}
            evidence = entry.get("evidence") or {}
            for name, unit, value in entry["series"]:
                series_id = self._series_id(probe, str(name), str(unit), str(entry.get("kind") or "resource"))
                current[series_id] = float(value)
                if name in evidence:
                    text = json.dumps(evidence[name], sort_keys=True)
                    if self._last_evidence.get(series_id) != text:
                        self._last_evidence[series_id] = text
                        self.db.execute(
                            "INSERT OR REPLACE INTO probe_evidence (run_id, series_id, evidence) VALUES (?, ?, ?)",
                            [self.run_id, series_id, text],
                        )
            changes = _changes(self._last_probe_values.setdefault(probe, {}), current, 0.0)
            self.db.conn.executemany(
                "INSERT INTO probe_values (run_id, series_id, seq, value) VALUES (?, ?, ?, ?)",
                [(self.run_id, series_id, seq, value) for series_id, value in changes],
            )

    def _store_holders(self, seq: int, holders: dict[str, dict[str, Any]]) -> None:
        """The holder chains searched in this snapshot, by subject key (``type:<name>`` or
        ``site:<stack id>``, as the supervisor asked); the latest search of each replaces the last."""
        for key, evidence in holders.items():
            subject, _, stack = str(key).partition(":")
            stack_id = int(stack) if subject == "site" else None
            subject = str(key) if stack_id is None else "site"
            self.db.execute("DELETE FROM holders WHERE run_id = ? AND subject = ? AND stack_id IS ?",
                            [self.run_id, subject, stack_id])
            self.db.execute(
                "INSERT INTO holders (run_id, subject, stack_id, segment, seq, evidence) VALUES (?, ?, ?, ?, ?, ?)",
                [self.run_id, subject, stack_id, self.segment, seq, json.dumps(evidence, sort_keys=True)],
            )

    def _series_id(self, probe: str, name: str, unit: str, kind: str) -> int:
        key = (probe, name, unit)
        series_id = self._series_ids.get(key)
        if series_id is None:
            self.db.execute("INSERT OR IGNORE INTO probe_series (probe, name, unit, kind) VALUES (?, ?, ?, ?)",
                            [probe, name, unit, kind])
            series_id = self.db.execute(
                "SELECT id FROM probe_series WHERE probe = ? AND name = ? AND unit = ?", key
            ).fetchone()[0]
            self._series_ids[key] = series_id
        return series_id

    def record_event(self, t_s: float, kind: str, message: str, data: Mapping[str, object] | None = None) -> None:
        with _writing(self.db), write_transaction(self.db):
            self.db.execute(
                "INSERT INTO events (run_id, t_s, at, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                [self.run_id, t_s, utc_iso(), kind, message, json.dumps(data) if data else None],
            )

    def replace_findings(self, findings: Sequence[Finding], t_s: float) -> dict[str, float]:
        """Store the current findings, remembering when each was first detected.

        Returns finding_id → first detection time (seconds since start).
        """
        with _writing(self.db), write_transaction(self.db):
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
                row = finding.row()
                self.db.execute(
                    "INSERT INTO findings (run_id, rank, detected_at_s, "
                    + ", ".join(row)
                    + ") VALUES (?, ?, ?, "
                    + ", ".join("?" for _ in row)
                    + ")",
                    [self.run_id, rank, detected[finding.finding_id], *row.values()],
                )
        return detected

    def replace_decision(self, rules: Sequence[RuleRow], accepted: Sequence[AcceptedRow]) -> None:
        """Store what suppression rules decided of the current findings (see soak.judging.judgement):
        one row per rule and per accepted finding."""
        with _writing(self.db), write_transaction(self.db):
            self.db.execute("DELETE FROM suppression_rules WHERE run_id = ?", [self.run_id])
            self.db.execute("DELETE FROM accepted_findings WHERE run_id = ?", [self.run_id])
            tables: tuple[tuple[str, Sequence[Mapping[str, object]]], ...] = (("suppression_rules", rules), ("accepted_findings", accepted))
            for table, rows in tables:
                for row in rows:
                    self.db.execute(f"INSERT INTO {table} (run_id, {', '.join(row)}) VALUES (?, {', '.join('?' for _ in row)})",
                                    [self.run_id, *row.values()])

    def set_verdict(self, verdict: str, analysis: RunSummary | None = None) -> None:
        """The run's verdict and, optionally, what the analysis said of the run as a whole."""
        with _writing(self.db), write_transaction(self.db):
            if analysis is None:
                self.db.execute("UPDATE runs SET verdict = ? WHERE id = ?", [verdict, self.run_id])
            else:
                self.db.execute("UPDATE runs SET verdict = ?, analysis = ? WHERE id = ?",
                                [verdict, json.dumps(analysis), self.run_id])

    def finish(self, status: str, reason: str | None, duration_s: float) -> None:
        with _writing(self.db), write_transaction(self.db):
            self.db.execute(
                "UPDATE runs SET status = ?, status_reason = ?, ended_at = ?, duration_s = max(duration_s, ?)"
                " WHERE id = ?",
                [status, reason, utc_iso(), duration_s, self.run_id],
            )


K = TypeVar("K")
V = TypeVar("V")


def _changes(last: dict[K, V], current: dict[K, V], zero: V) -> list[tuple[K, V]]:
    """What to store for a sparse series: values that changed, and ``zero`` for keys that vanished.

    Updates ``last`` to the new state.
    """
    changed = [(key, value) for key, value in current.items() if last.get(key) != value]
    changed += [(key, zero) for key, value in last.items() if key not in current and value != zero]
    last.update(changed)
    return changed


def _process_start() -> float:
    return psutil.Process().create_time()


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


class _writing:
    """Turn SQLite write errors (a full disk, a read-only file) into one-line leaksoak errors."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        if isinstance(exc, (sqlite3.OperationalError, sqlite3.DatabaseError)) and not isinstance(exc, sqlite3.IntegrityError):
            try:
                filename = self.db.conn.execute("PRAGMA database_list").fetchone()[2]
            except sqlite3.Error:
                filename = "the database"
            raise InternalFailure(f"cannot write {filename}: {exc}; every snapshot committed before is kept") from exc
        return False
