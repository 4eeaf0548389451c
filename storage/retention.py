"""Thinning old snapshots of long runs: full resolution for the recent window, every k-th before it.

Sparse samples carry their value forward, so before a snapshot is removed, any site (or type)
whose last change sits in a removed snapshot gets a row at the next kept one: every value a
reader sees at a kept snapshot is exactly what it was before thinning.
"""

from __future__ import annotations

import bisect

from sqlite_utils import Database

from soak.storage.database import write_transaction

SPARSE_TABLES = (
    ("site_samples", "stack_id", "bytes, count, samples"),
    ("type_samples", "type_id", "count"),
    ("probe_values", "series_id", "value"),
)
"""Per-snapshot series stored as changes: (table, series key, value columns)."""

MAX_SNAPSHOTS_PER_PASS = 500
"""Thin in small transactions, so that a reader beside the writer never waits long."""


def thin(db: Database, run_id: int, *, older_than_s: float, keep_every: int) -> int:
    """Remove all but every ``keep_every``-th snapshot taken before ``older_than_s`` (seconds since
    the run started). The first and last snapshot of each segment are kept. Returns how many
    snapshots were removed."""
    if keep_every <= 1:
        return 0
    rows = db.execute(
        "SELECT seq, segment FROM snapshots WHERE run_id = ? AND t_s < ? ORDER BY seq", [run_id, older_than_s]
    ).fetchall()
    later = db.execute(
        "SELECT min(seq) FROM snapshots WHERE run_id = ? AND t_s >= ?", [run_id, older_than_s]
    ).fetchone()[0]
    removed: list[int] = []
    kept: list[int] = []
    for i, (seq, segment) in enumerate(rows):
        boundary = i == 0 or i == len(rows) - 1 or rows[i - 1][1] != segment or rows[i + 1][1] != segment
        if boundary or seq % keep_every == 0 or len(removed) >= MAX_SNAPSHOTS_PER_PASS:
            kept.append(seq)  # past the cap, a snapshot waits for the next pass
        else:
            removed.append(seq)
    if not removed:
        return 0
    if later is not None:
        kept.append(later)
    with write_transaction(db):
        for table, key, values in SPARSE_TABLES:
            _carry_forward(db, run_id, table, key, values, removed, kept)
        marks = ",".join("?" for _ in removed)
        for table in [table for table, _, _ in SPARSE_TABLES] + ["snapshots"]:
            db.execute(f"DELETE FROM {table} WHERE run_id = ? AND seq IN ({marks})", [run_id, *removed])
    return len(removed)


def _carry_forward(db: Database, run_id: int, table: str, key: str, values: str,
                   removed: list[int], kept: list[int]) -> None:
    marks = ",".join("?" for _ in removed)
    rows = db.execute(
        f"SELECT {key}, seq, {values} FROM {table} WHERE run_id = ? AND seq IN ({marks}) ORDER BY {key}, seq",
        [run_id, *removed],
    ).fetchall()
    latest: dict[tuple[int, int], tuple[int, ...]] = {}
    for row in rows:
        index = bisect.bisect_right(kept, row[1])
        if index < len(kept):  # the value must hold at the next kept snapshot
            latest[(row[0], kept[index])] = tuple(row[2:])
    n_values = len(values.split(","))
    db.conn.executemany(
        f"INSERT OR IGNORE INTO {table} (run_id, {key}, seq, {values}) VALUES (?, ?, ?{', ?' * n_values})",
        [(run_id, ident, seq, *vals) for (ident, seq), vals in latest.items()],
    )
