"""Opening a leaksoak database: WAL, a busy timeout for readers beside a writer, schema checks."""

from __future__ import annotations

import os
import sqlite3

from sqlite_utils import Database

from soak.errors import BadInput, InternalFailure
from soak.storage.schema import migrations

BUSY_TIMEOUT_MS = 10_000


def open_database(path: str, *, create: bool = True) -> Database:
    """Open (and, with ``create``, create or migrate) the database at ``path``.

    Raises BadInput for a file that is not a leaksoak database, one written by a newer
    leaksoak, or a location that cannot be written.
    """
    exists = os.path.exists(path)
    if not exists and not create:
        raise BadInput(f"no database at {path!r}; run `soak run` first or pass --db")
    if not exists:
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise BadInput(f"cannot create {path!r}: directory {directory!r} does not exist")
        if not os.access(directory, os.W_OK):
            raise BadInput(f"cannot create {path!r}: directory is not writable")
    try:
        # check_same_thread=False: a run's scheduler thread writes after the main thread opened it;
        # callers make sure one thread at a time uses a connection.
        db = Database(sqlite3.connect(path, check_same_thread=False))
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # In WAL mode, NORMAL still makes every commit durable against a crash or SIGKILL of this
        # process (the OS has the pages); only a power cut could lose the last commits.
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BadInput(f"{path!r} is not a leaksoak database ({exc})") from exc
    _check_schema(db, path)
    if create:
        try:
            if db.journal_mode != "wal":
                db.enable_wal()
            migrations.apply(db)
        except sqlite3.OperationalError as exc:
            raise _write_error(path, exc) from exc
    return db


def _check_schema(db: Database, path: str) -> None:
    tables = set(db.table_names())
    if tables and "runs" not in tables:
        raise BadInput(f"{path!r} is an SQLite database but not a leaksoak one; choose another --db")
    if "_sqlite_migrations" not in tables:
        return
    applied = {m.name for m in migrations.applied(db)}
    known = {m.name for m in migrations._migrations}  # noqa: SLF001 - sqlite-utils keeps no public list
    if applied - known:
        raise BadInput(
            f"{path!r} was written by a newer leaksoak (schema {sorted(applied - known)[-1]}); upgrade leaksoak to read it"
        )


def _write_error(path: str, exc: sqlite3.OperationalError) -> Exception:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return BadInput(f"cannot write {path!r}: the database or its directory is read-only")
    return InternalFailure(f"cannot write {path!r}: {text}")  # a full disk among them
