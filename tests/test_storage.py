"""The real SQLite writer and readers."""

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from soak.errors import BadInput
from soak.model.finding import Finding
from soak.storage import open_database, queries
from soak.storage.schema import MIGRATION_SET
from soak.storage.writer import RunWriter


def _writer(path: Path) -> RunWriter:
    db = open_database(str(path))
    return RunWriter.create_run(
        db, name="t", target="x.py:step", mode="run", planned_duration_s=10, interval_s=1,
        options={}, function_name=lambda file, line: "step",
    )


def _snapshot(writer: RunWriter, seq: int, sites: list[list[int]], new_stacks: dict[str, list[list[object]]] | None = None) -> None:
    heap = {"sites": sites, "new_stacks": new_stacks or {}, "iterations": seq * 10}
    assert writer.record_snapshot(float(seq), {"rss": 1000 + seq}, heap) == seq


def test_database_is_wal_and_migrations_are_recorded_once(db: Path) -> None:
    open_database(str(db)).close()
    database = open_database(str(db))
    assert database.journal_mode == "wal"
    names = [r[0] for r in database.execute("SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [MIGRATION_SET])]
    assert names == ["0001_initial", "0002_segments_types_views", "0003_pss_cgroup", "0004_run_analysis",
                     "0005_sample_interval", "0006_probe_series", "0007_suppressions", "0009_holders",
                     "0010_process_tree"]


def test_sparse_samples_are_carried_forward_on_read(db: Path) -> None:
    writer = _writer(db)
    stacks = {"1": [["/app/a.py", 3]], "2": [["/app/b.py", 9], ["/app/a.py", 4]]}
    _snapshot(writer, 0, [[1, 100, 1], [2, 50, 1]], stacks)
    _snapshot(writer, 1, [[1, 100, 1], [2, 60, 2]])
    _snapshot(writer, 2, [[1, 100, 1]])  # site 2 gone
    _snapshot(writer, 3, [[1, 300, 3], [2, 70, 1]])
    stored = writer.db.execute("SELECT count(*) FROM site_samples").fetchone()[0]
    assert stored == 6  # 7 values and one disappearance; site 1 unchanged at seq 1 and 2
    series = {s.stack_id: s for s in queries.site_series(writer.db, writer.run_id, np.arange(4))}
    by_file = {queries.stack_frames(writer.db, [sid])[sid][0].file: s for sid, s in series.items()}
    assert by_file["/app/a.py"].bytes.tolist() == [100, 100, 100, 300]
    assert by_file["/app/b.py"].bytes.tolist() == [50, 60, 0, 70]
    assert by_file["/app/b.py"].counts.tolist() == [1, 2, 0, 1]


def test_a_process_level_reading_leaves_the_sites_alone(db: Path) -> None:
    # a watched service's agent that did not answer: RSS only, which says nothing of the sites
    writer = _writer(db)
    _snapshot(writer, 0, [[1, 100, 1]], {"1": [["/app/a.py", 3]]})
    writer.record_snapshot(1.0, {"rss": 2000}, {"pid": 1})
    _snapshot(writer, 2, [[1, 300, 3]])
    (series,) = queries.site_series(writer.db, writer.run_id, np.arange(3))
    assert series.bytes.tolist() == [100, 100, 300]


def test_stacks_and_frames_are_stored_once(db: Path) -> None:
    writer = _writer(db)
    _snapshot(writer, 0, [[1, 10, 1]], {"1": [["/app/a.py", 3], ["/app/main.py", 1]]})
    writer.new_worker()  # a second worker numbers its stacks afresh
    _snapshot(writer, 1, [[7, 20, 2]], {"7": [["/app/a.py", 3], ["/app/main.py", 1]]})
    assert writer.db.execute("SELECT count(*) FROM stacks").fetchone()[0] == 1
    assert writer.db.execute("SELECT count(*) FROM frames").fetchone()[0] == 2


def test_frames_are_named_once_and_outside_the_write_lock(db: Path) -> None:
    # Naming reads files (seconds for a service's first snapshot); other runs sharing the file
    # must not wait on that.
    database = open_database(str(db))
    asked: list[tuple[str, int]] = []

    def name(file: str, line: int) -> str:
        assert not database.conn.in_transaction
        asked.append((file, line))
        return f"f{line}"

    writer = RunWriter.create_run(database, name="t", target="x.py:step", mode="run", planned_duration_s=10,
                                  interval_s=1, options={}, function_name=name)
    _snapshot(writer, 0, [[1, 10, 1], [2, 5, 1]], {"1": [["/app/a.py", 3], ["/app/main.py", 1]],
                                                   "2": [["/app/a.py", 4], ["/app/main.py", 1]]})
    _snapshot(writer, 1, [[3, 10, 1]], {"3": [["/app/a.py", 3], ["/app/main.py", 2]]})
    assert asked == [("/app/a.py", 3), ("/app/main.py", 1), ("/app/a.py", 4), ("/app/main.py", 2)]
    functions = dict(((f, line), fn) for f, line, fn in database.execute("SELECT file, line, function FROM frames"))
    assert functions == {("/app/a.py", 3): "f3", ("/app/main.py", 1): "f1", ("/app/a.py", 4): "f4", ("/app/main.py", 2): "f2"}
    # A resumed run's new worker sends its stacks again: found by their hash, not named again.
    resumed = RunWriter.resume(database, writer.run_id, name, supervisor_pid=1)
    resumed.record_snapshot(2.0, {}, {"sites": [[1, 10, 1]], "new_stacks": {"1": [["/app/a.py", 3], ["/app/main.py", 1]]}})
    assert len(asked) == 4 and database.execute("SELECT count(*) FROM stacks").fetchone()[0] == 3


def test_findings_keep_their_first_detection_time(db: Path) -> None:
    writer = _writer(db)
    row = Finding("abc", "site", "leak", [], "application", None, 1e6, 10.0, 1e-9, 1e-8, 1 - 1e-8, None, None)
    assert writer.replace_findings([row], 12.0) == {"abc": 12.0}
    assert writer.replace_findings([row], 30.0) == {"abc": 12.0}
    assert [f["detected_at_s"] for f in queries.findings(writer.db, writer.run_id)] == [12.0]


def test_run_lookup_by_id_name_and_latest(db: Path) -> None:
    first, second = _writer(db), _writer(db)
    assert queries.find_run(first.db, "latest")["id"] == second.run_id
    assert queries.find_run(first.db, str(first.run_id))["id"] == first.run_id
    assert queries.find_run(first.db, "t")["id"] == second.run_id
    with pytest.raises(BadInput, match="no run 'nope'"):
        queries.find_run(first.db, "nope")


def test_not_a_database_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(BadInput, match="not a leaksoak database"):
        open_database(str(path))
    assert path.read_text().startswith("these are not")


def test_another_applications_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(BadInput, match="not a leaksoak one"):
        open_database(str(path))


def test_newer_schema_is_refused_without_writing(db: Path) -> None:
    open_database(str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES (?, '9999_future', 'x')",
            [MIGRATION_SET],
        )
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.read_bytes()
    with pytest.raises(BadInput, match="newer leaksoak"):
        open_database(str(db))
    assert db.read_bytes() == before


def test_missing_database_for_reading_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="no database"):
        open_database(str(tmp_path / "absent.db"), create=False)
    assert not (tmp_path / "absent.db").exists()


def test_views_for_datasette_answer(db: Path) -> None:
    writer = _writer(db)
    _snapshot(writer, 0, [[1, 100, 1]], {"1": [["/app/a.py", 3], ["/app/main.py", 9]]})
    _snapshot(writer, 1, [[1, 300, 3]])
    stack_id = writer.db.execute("SELECT id FROM stacks").fetchone()[0]
    row = Finding("abc", "site", "leak", [], "application", None, 2 * 1048576, 10.0, 1e-9, 1e-8, 1.0, None, None,
                  stack_id=stack_id)
    writer.replace_findings([row], 5.0)
    assert writer.db.execute("SELECT file, line, function, growth_mib_per_hour FROM finding_lines").fetchall() == [
        ("/app/a.py", 3, "step", 2.0)
    ]
    assert writer.db.execute("SELECT library, findings, growth_mib_per_hour FROM library_growth").fetchall() == [
        ("application", 1, 2.0)
    ]
    assert writer.db.execute("SELECT file, line, first_bytes, last_bytes, changes FROM site_growth").fetchall() == [
        ("/app/a.py", 3, 100, 300, 2)
    ]
