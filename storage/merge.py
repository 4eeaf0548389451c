"""Merging finished runs from many machines' databases into one file.

A run is known by where and when it started — (host, started_ts, target, name) — so the same run
merged twice is stored once, and runs from different machines that had the same local id are kept
apart. Every table is merged by a plan that says which of its columns hold run, stack, frame or
type ids; a table without a plan is refused rather than silently dropped.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from soak.errors import BadInput
from soak.storage.database import write_transaction
from soak.storage.queries import effective_status
from soak.storage.schema import MIGRATION_SET, migrations
from soak.storage.writer import utc_iso

merge_migrations = Migrations("leaksoak.merge")


@merge_migrations(name="0001_merged_runs")
def _merged_runs(db: Database) -> None:
    db.executescript(
        """
        -- Where each merged run came from: the file and the id it had there, on its host.
        CREATE TABLE merged_runs (
            run_id INTEGER PRIMARY KEY REFERENCES runs(id),
            source_file TEXT NOT NULL,
            source_run_id INTEGER NOT NULL,
            host TEXT,
            merged_at TEXT NOT NULL,
            fingerprint TEXT NOT NULL                  -- JSON: how far the run had got when merged
        );
        """
    )


@dataclass(frozen=True)
class Dictionary:
    """A table of shared rows (frames, stacks, types): a surrogate ``id`` and a unique natural key."""

    table: str
    key: tuple[str, ...]


@dataclass(frozen=True)
class PerRun:
    """A table of rows that belong to one run: ``run_id``, and ids of dictionary rows to translate."""

    table: str
    ids: dict[str, str] = field(default_factory=dict)
    """column → the dictionary table whose ids it holds"""
    surrogate: str | None = None
    """An ``INTEGER PRIMARY KEY`` column that nothing else refers to: OUT numbers it afresh."""


DICTIONARIES = (Dictionary("frames", ("file", "line", "function")), Dictionary("stacks", ("hash",)),
                Dictionary("types", ("name",)), Dictionary("probe_series", ("probe", "name", "unit")))
PER_RUN = (
    PerRun("snapshots", surrogate="id"),
    PerRun("site_samples", {"stack_id": "stacks"}),
    PerRun("type_samples", {"type_id": "types"}),
    PerRun("probe_values", {"series_id": "probe_series"}),
    PerRun("probe_evidence", {"series_id": "probe_series"}),
    PerRun("findings", {"stack_id": "stacks"}, surrogate="id"),
    PerRun("detections"),
    PerRun("events", surrogate="id"),
    PerRun("suppression_rules"),
    PerRun("accepted_findings"),
    PerRun("holders", {"stack_id": "stacks"}, surrogate="id"),
)
SPECIAL = {"runs", "stack_frames", "merged_runs", "_sqlite_migrations"}
"""Tables merged by code of their own (stack_frames follows stacks) or not merged."""
RUN_KEY = ("host", "started_ts", "target", "name")


def planned_tables() -> set[str]:
    return {d.table for d in DICTIONARIES} | {p.table for p in PER_RUN} | SPECIAL


@dataclass
class InputResult:
    """What merging one input file did."""

    path: str
    merged: list[int] = field(default_factory=list)
    """Runs copied in, by their id in OUT."""
    replaced: list[int] = field(default_factory=list)
    """Runs merged before that had gone on since (a resumed run): their earlier copy replaced."""
    present: int = 0
    """Runs already in OUT as they are: left alone."""
    running: list[int] = field(default_factory=list)
    """Runs still running (ids in the input): not merged."""


def check_input(path: str) -> None:
    """Raise BadInput, in one line, unless ``path`` is a leaksoak database this version can read."""
    with _reading(path) as source:
        _check_source(source, path)


def merge_into(out: Database, paths: list[str]) -> list[InputResult]:
    """Merge each input into ``out`` in one transaction: all of them, or (on an error) none."""
    merge_migrations.apply(out)
    own_columns = {table: _columns(out.conn, table) for table in out.table_names()}
    results = []
    with write_transaction(out):
        for path in paths:
            with _reading(path) as source:
                _check_source(source, path)
                try:
                    results.append(_merge_one(out.conn, source, path, own_columns))
                except sqlite3.DatabaseError as exc:
                    raise BadInput(f"cannot merge {path!r}: {exc}") from exc
    return results


@dataclass
class _Ids:
    """Translation of one input's dictionary ids into OUT's, filled as rows are needed."""

    maps: dict[str, dict[int, int]] = field(default_factory=dict)
    new_stacks: set[int] = field(default_factory=set)
    """Input stack ids whose stack was not in OUT before: their frames are copied."""


def _merge_one(out: sqlite3.Connection, source: sqlite3.Connection, path: str,
               own_columns: dict[str, list[str]]) -> InputResult:
    result = InputResult(path)
    source_tables = set(_tables(source))
    origins = _origins(source) if "merged_runs" in source_tables else {}
    ids = _Ids()
    run_columns = _shared_columns(own_columns["runs"], _columns(source, "runs"), drop="id")
    run_ids: dict[int, int] = {}
    """Each run's id in the source → its id here (a tree's processes name their root's run)."""
    for run in _select(source, "SELECT * FROM runs ORDER BY id"):
        status, reason = effective_status(run)
        if status == "running":
            result.running.append(run["id"])
            continue
        fingerprint = json.dumps({k: run.get(k) for k in ("status", "ended_at", "duration_s", "snapshots", "verdict")})
        existing = out.execute(
            "SELECT r.id, m.fingerprint FROM runs r LEFT JOIN merged_runs m ON m.run_id = r.id"
            " WHERE r.host IS ? AND r.started_ts = ? AND r.target = ? AND r.name = ?",
            [run[k] for k in RUN_KEY],
        ).fetchone()
        if existing is not None and (existing[1] is None or existing[1] == fingerprint):
            result.present += 1
            run_ids[run["id"]] = existing[0]
            continue
        if existing is not None:
            _delete_run(out, existing[0], own_columns)
        if not ids.maps:
            _map_dictionaries(out, source, source_tables, own_columns, ids)
        values = {**{c: run[c] for c in run_columns}, "status": status, "status_reason": reason}
        if "parent_run_id" in values:  # a process of a watched tree: its root's run, as merged here
            values["parent_run_id"] = run_ids.get(values["parent_run_id"]) if values["parent_run_id"] is not None else None
        if existing is not None:
            values["id"] = existing[0]
        out_id = _insert(out, "runs", values)
        run_ids[run["id"]] = out_id
        source_file, source_run_id = origins.get(run["id"], (os.path.abspath(path), run["id"]))
        out.execute(
            "INSERT INTO merged_runs (run_id, source_file, source_run_id, host, merged_at, fingerprint)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [out_id, source_file, source_run_id, run["host"], utc_iso(), fingerprint],
        )
        for plan in PER_RUN:
            if plan.table in source_tables:
                _copy_rows(out, source, plan, run["id"], out_id, own_columns, ids)
        (result.replaced if existing is not None else result.merged).append(out_id)
    return result


def _map_dictionaries(out: sqlite3.Connection, source: sqlite3.Connection, source_tables: set[str],
                      own_columns: dict[str, list[str]], ids: _Ids) -> None:
    """Find or add each of the input's frames, stacks and types in OUT by its natural key."""
    for dictionary in DICTIONARIES:
        mapping: dict[int, int] = {}
        ids.maps[dictionary.table] = mapping
        if dictionary.table not in source_tables:
            continue
        columns = _shared_columns(own_columns[dictionary.table], _columns(source, dictionary.table), drop="id")
        where = " AND ".join(f"{c} = ?" for c in dictionary.key)
        for row in _select(source, f"SELECT id, {', '.join(columns)} FROM {dictionary.table}"):
            found = out.execute(f"SELECT id FROM {dictionary.table} WHERE {where}",
                                [row[c] for c in dictionary.key]).fetchone()
            if found is None:
                mapping[row["id"]] = _insert(out, dictionary.table, {c: row[c] for c in columns})
                if dictionary.table == "stacks":
                    ids.new_stacks.add(row["id"])
            else:
                mapping[row["id"]] = found[0]
    if "stack_frames" in source_tables:
        frames = ids.maps["frames"]
        for row in _select(source, "SELECT stack_id, position, frame_id FROM stack_frames"):
            if row["stack_id"] in ids.new_stacks:
                out.execute("INSERT INTO stack_frames (stack_id, position, frame_id) VALUES (?, ?, ?)",
                            [ids.maps["stacks"][row["stack_id"]], row["position"], frames[row["frame_id"]]])


def _copy_rows(out: sqlite3.Connection, source: sqlite3.Connection, plan: PerRun, source_run: int, out_run: int,
               own_columns: dict[str, list[str]], ids: _Ids) -> None:
    columns = _shared_columns(own_columns[plan.table], _columns(source, plan.table), drop=plan.surrogate)
    cursor = source.execute(f"SELECT {', '.join(columns)} FROM {plan.table} WHERE run_id = ?", [source_run])
    positions = {c: i for i, c in enumerate(columns)}
    translate = [(positions[c], ids.maps[table]) for c, table in plan.ids.items() if c in positions]
    run_at = positions["run_id"]
    insert = f"INSERT INTO {plan.table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    while batch := cursor.fetchmany(5000):
        rows = []
        for row in batch:
            values = list(row)
            values[run_at] = out_run
            for at, mapping in translate:
                if values[at] is not None:
                    values[at] = mapping[values[at]]
            rows.append(values)
        out.executemany(insert, rows)


def _delete_run(out: sqlite3.Connection, run_id: int, own_columns: dict[str, list[str]]) -> None:
    for plan in PER_RUN:
        if plan.table in own_columns:
            out.execute(f"DELETE FROM {plan.table} WHERE run_id = ?", [run_id])
    out.execute("DELETE FROM merged_runs WHERE run_id = ?", [run_id])
    out.execute("DELETE FROM runs WHERE id = ?", [run_id])


def _check_source(source: sqlite3.Connection, path: str) -> None:
    try:
        tables = set(_tables(source))
        applied = dict(source.execute("SELECT name, migration_set FROM _sqlite_migrations").fetchall()
                       if "_sqlite_migrations" in tables else [])
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path!r} is not a leaksoak database ({exc})") from exc
    if "runs" not in tables or "0001_initial" not in applied:
        raise BadInput(f"{path!r} is not a leaksoak database")
    known = {m.name for m in migrations._migrations}  # noqa: SLF001 - sqlite-utils keeps no public list
    known_merge = {m.name for m in merge_migrations._migrations}  # noqa: SLF001
    newer = sorted(name for name, subset in applied.items()
                   if name not in {MIGRATION_SET: known, merge_migrations.name: known_merge}.get(subset, {name}))
    if newer:
        raise BadInput(f"{path!r} was written by a newer leaksoak (schema {newer[-1]}); upgrade leaksoak to merge it")
    unplanned = sorted(t for t in tables - planned_tables() if not t.startswith("sqlite_"))
    if unplanned:
        raise BadInput(f"{path!r} has tables that merge does not know how to combine: {', '.join(unplanned)}")


class _reading:
    """An input opened for reading only; a missing or unreadable file is a one-line BadInput."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        if not os.path.isfile(self.path):
            raise BadInput(f"no database at {self.path!r}")
        try:
            # Not mode=ro: a read-only connection to a WAL database leaves its -wal and -shm files
            # behind. query_only refuses every write just the same.
            self.conn = sqlite3.connect(self.path)
            self.conn.execute("PRAGMA query_only = 1")
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"{self.path!r} is not a leaksoak database ({exc})") from exc
        return self.conn

    def __exit__(self, *exc: Any) -> None:
        if self.conn is not None:
            self.conn.close()


def _origins(source: sqlite3.Connection) -> dict[int, tuple[str, int]]:
    """A merged input's own record of where its runs came from: merging merged files keeps it."""
    return {row[0]: (row[1], row[2]) for row in source.execute("SELECT run_id, source_file, source_run_id FROM merged_runs")}


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def _shared_columns(own: list[str], theirs: list[str], drop: str | None) -> list[str]:
    """Columns both files have (an older input lacks later ones: they stay NULL or default)."""
    present = set(theirs)
    return [c for c in own if c in present and c != drop]


def _select(conn: sqlite3.Connection, sql: str, params: list[Any] | None = None) -> Iterator[dict[str, Any]]:
    cursor = conn.execute(sql, params or [])
    names = [c[0] for c in cursor.description]
    while batch := cursor.fetchmany(5000):
        for row in batch:
            yield dict(zip(names, row, strict=True))


def _insert(conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> int:
    cursor = conn.execute(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
                          list(values.values()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid
