"""Opening a leaksoak database: WAL, a busy timeout for readers beside a writer, schema checks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Iterator

from sqlite_utils import Database

from soak.errors import BadInput, InternalFailure
from soak.storage.schema import migrations

BUSY_TIMEOUT_MS = 60_000  # runs sharing a file wait their turn; failing one would lose a run


def open_database(path: str, *, create: bool = True) -> Database:
    """Open (and, with ``create``, create or migrate) the database at ``path``.

    Raises BadInput for a file that is not a leaksoak database, one written by a newer
    leaksoak, a location that cannot be written, or (without ``create``) an empty one.
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
    connection: sqlite3.Connection | None = None
    try:
        # check_same_thread=False: a run's scheduler thread writes after the main thread opened it;
        # callers make sure one thread at a time uses a connection.
        connection = sqlite3.connect(path, check_same_thread=False)
        db = Database(connection)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # In WAL mode, NORMAL still makes every commit durable against a crash or SIGKILL of this
        # process (the OS has the pages); only a power cut could lose the last commits.
        db.execute("PRAGMA synchronous = NORMAL")
        _check_and_migrate(db, path, create)
    except BaseException as exc:  # a refused file is closed at once: no connection, -wal or -shm left behind
        if connection is not None:
            connection.close()
        if isinstance(exc, sqlite3.DatabaseError):
            raise BadInput(f"{path!r} is not a leaksoak database ({exc})") from exc
        raise
    return db


def _check_and_migrate(db: Database, path: str, create: bool) -> None:
    # Several runs may start at once on one new file: one of them creates the schema while the
    # others wait, instead of finding it half made (or failing to switch it to WAL).
    with _schema_lock(path, exclusive=create):
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        _check_schema(db, path)
        if not create and not db.table_names():
            raise BadInput(f"{path!r} is an empty database: no runs in it yet; run `soak run` first or pass --db")
        if create:
            try:
                if db.journal_mode != "wal":
                    db.enable_wal()
                migrations.apply(db)
            except sqlite3.OperationalError as exc:
                raise _write_error(path, exc) from exc


@contextlib.contextmanager
def _schema_lock(path: str, *, exclusive: bool) -> Iterator[None]:
    """An advisory lock on the database's directory while its schema is checked or made.

    The directory, not the file: SQLite's own POSIX locks on the file are dropped when any other
    descriptor of it is closed, and a lock file would be one more file beside every database.
    """
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):  # a filesystem without flock: go on unlocked
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


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


@contextlib.contextmanager
def write_transaction(db: Database) -> Iterator[Database]:
    """A transaction that takes SQLite's write lock at its start (``BEGIN IMMEDIATE``).

    sqlite-utils' ``atomic()`` begins a deferred transaction; one that reads before it writes
    fails at once with 'database is locked', whatever the busy timeout, when another run sharing
    the file committed in between. Taking the lock first makes it wait its turn instead.
    """
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    else:
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            db.conn.rollback()
            raise


def check_before_writing(path: str) -> None:
    """Raise BadInput now, before a run starts, if ``path`` is a file a run cannot write its
    runs into (not a leaksoak database, or a newer one); a new or empty file is fine."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        open_database(path, create=False).close()
