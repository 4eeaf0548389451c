"""Storage that survives: SIGKILL at random moments, resume, readers beside a writer, full disks."""

from __future__ import annotations

import json
import os
import random
import resource
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
from conftest import TEST_WORKLOADS, db_rows, run_soak, soak_command
from killing import committed, kill_once

from soak.storage import open_database, queries
from soak.storage.retention import thin
from soak.storage.writer import RunWriter

LEAKY = "soak.workloads.reference.leaky_dict_cache:step"


def test_supervisor_killed_at_random_moments_loses_nothing_and_resumes(db: Path) -> None:
    rng = random.Random(20261125)
    seen: set[int] = set()
    command = ["run", LEAKY, "--db", str(db), "--duration", "1h", "--interval", "0.1s", "-q"]
    for kill in range(1, 21):
        outcome = kill_once(db, [*soak_command(), *command], "supervisor", rng, seen_before=seen)
        assert outcome.integrity == "ok", f"kill {kill}: {outcome.integrity}"
        assert not outcome.lost, f"kill {kill}: acknowledged snapshots {sorted(outcome.lost)} are gone"
        assert outcome.counted == len(outcome.seen)  # the run row and its snapshots are committed together
        seen = outcome.seen
        if seen:
            status = run_soak("runs", "--db", str(db))
            assert status.returncode == 0 and "killed" in status.stdout and "running" not in status.stdout
            command = ["run", "--resume", "latest", "--db", str(db), "--duration", "1h", "-q"]
    # A last resume runs to its end and the series is one run with many segments.
    final = run_soak("run", "--resume", "latest", "--db", str(db), "--duration", "4s", "--format", "json", "-q")
    assert final.returncode == 1, final.stderr
    report = final.json()
    assert report["run"]["status"] == "completed" and report["verdict"] == "leak"
    assert db_rows(db, "SELECT count(*) FROM runs") == [(1,)]
    segments = db_rows(db, "SELECT count(DISTINCT segment) FROM snapshots")[0][0]
    resumes = db_rows(db, "SELECT count(*) FROM events WHERE kind = 'resume'")[0][0]
    assert segments >= 10 and resumes >= segments - 1
    seqs = [seq for (seq,) in db_rows(db, "SELECT seq FROM snapshots ORDER BY seq")]
    assert seqs == list(range(len(seqs)))  # one series, no holes, no duplicates


def test_resume_refuses_a_completed_run_and_a_missing_one(db: Path) -> None:
    done = run_soak("run", f"{TEST_WORKLOADS}/sleeper.py:step", "--db", str(db), "--duration", "1s", "--interval", "0.2s", "-q")
    assert done.returncode == 0
    again = run_soak("run", "--resume", "1", "--db", str(db))
    assert again.returncode == 2 and "completed" in again.stderr
    missing = run_soak("run", "--resume", "7", "--db", str(db))
    assert missing.returncode == 2 and "no run '7'" in missing.stderr
    both = run_soak("run", f"{TEST_WORKLOADS}/sleeper.py:step", "--resume", "1", "--db", str(db))
    assert both.returncode == 2 and "either a TARGET or --resume" in both.stderr


def test_reports_and_runs_work_while_a_run_writes(db: Path) -> None:
    proc = subprocess.Popen([*soak_command(), "run", LEAKY, "--db", str(db), "--duration", "12s", "--interval", "0.05s", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not committed(db)[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        statuses = []
        for _ in range(6):
            report = run_soak("report", "--db", str(db), "--format", "json")
            assert report.returncode == 0, report.stderr
            statuses.append(report.json()["run"]["status"])
            runs = run_soak("runs", "--db", str(db))
            assert runs.returncode == 0 and "locked" not in runs.stderr
        assert "running" in statuses
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 1


def test_thinning_keeps_every_value_at_the_snapshots_it_keeps(db: Path) -> None:
    database = open_database(str(db))
    writer = RunWriter.create_run(database, name="t", target="x.py:f", mode="run", planned_duration_s=100,
                                  interval_s=1, options={}, function_name=lambda f, line: "f")
    rng = np.random.default_rng(3)
    truth = {}
    for seq in range(60):
        sites = [[s, int(rng.integers(0, 5)) * 100, 1] for s in range(1, 6) if rng.random() < 0.7]
        stacks = {str(s): [[f"/a{s}.py", s]] for s in range(1, 6)} if seq == 0 else {}
        writer.record_snapshot(float(seq), {}, {"sites": sites, "new_stacks": stacks, "types": [["T", seq % 3]]})
        truth[seq] = {s: v for s, v, _ in sites}
    removed = thin(database, writer.run_id, older_than_s=40, keep_every=5)
    assert removed == 40 - 8 - 1  # of seqs 0..39: multiples of 5 and the boundaries 0 and 39 stay
    kept = [seq for (seq,) in database.execute("SELECT seq FROM snapshots ORDER BY seq")]
    assert kept[:9] == [0, 5, 10, 15, 20, 25, 30, 35, 39] and kept[9:] == list(range(40, 60))
    series = {s.stack_id: s for s in queries.site_series(database, writer.run_id, np.array(kept))}
    files = {sid: queries.stack_frames(database, [sid])[sid][0].file for sid in series}
    for stack_id, s in series.items():
        site = int(files[stack_id][2:-3])
        assert s.bytes.tolist() == [truth[seq].get(site, 0) for seq in kept]
    types = dict(database.execute("SELECT seq, count FROM type_samples ORDER BY seq").fetchall())
    assert all(types[seq] == seq % 3 for seq in kept if seq in types)


def test_export_json_and_csv(db: Path, tmp_path: Path) -> None:
    assert run_soak("run", LEAKY, "--db", str(db), "--duration", "3s", "--interval", "0.2s", "-q").returncode in (0, 1)
    out = tmp_path / "run.json"
    assert run_soak("export", "--db", str(db), "--output", str(out)).returncode == 0
    data = json.loads(out.read_text())
    assert data["schema"] == "leaksoak.report/1" and len(data["snapshots"]) == data["run"]["snapshots"]
    assert data["sites"] and all(site["traceback"] and site["samples"] for site in data["sites"])
    snapshots = run_soak("export", "1", "--db", str(db), "--format", "csv")
    header, *rows = snapshots.stdout.splitlines()
    assert header.startswith("id,run_id,seq,") and len(rows) == data["run"]["snapshots"]
    sites = run_soak("export", "--db", str(db), "-f", "csv", "--what", "sites")
    assert sites.stdout.splitlines()[0] == "seq,t_s,stack_id,file,line,function,bytes,count"
    bad = run_soak("export", "--db", str(db), "-f", "xml")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_newer_schema_through_the_cli_is_one_line_and_no_write(db: Path) -> None:
    open_database(str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('leaksoak', '9999_x', 'x')")
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # so that the bytes below are the whole database
    before = db.read_bytes()
    for args in (["runs"], ["report"], ["run", LEAKY, "--duration", "2s", "--interval", "1s"]):
        result = run_soak(*args, "--db", str(db))
        assert result.returncode == 2 and "newer leaksoak" in result.stderr and result.stderr.count("\n") == 1
    assert db.read_bytes() == before


def test_read_only_location_is_one_line_exit_2(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = Path("/proc/leaksoak-test.db")  # not writable even for root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        target = ro / "soak.db"
    result = run_soak("run", LEAKY, "--db", str(target), "--duration", "2s", "--interval", "1s")
    assert result.returncode == 2 and "soak: error:" in result.stderr and result.stderr.count("\n") == 1
    assert not target.exists()


def test_full_disk_ends_the_run_with_one_line_and_keeps_what_was_committed(db: Path) -> None:
    done = run_soak("run", f"{TEST_WORKLOADS}/sleeper.py:step", "--db", str(db), "--duration", "1s", "--interval", "0.2s", "-q")
    assert done.returncode == 0
    limit = db.stat().st_size + 300_000  # the WAL can grow this far, then writes fail

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.Popen([*soak_command(), "run", LEAKY, "--db", str(db), "--duration", "60s", "--interval", "0.05s", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=small_disk)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 3, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("soak: error:")]
    assert len(errors) == 1 and "full" in errors[0] and "Traceback" not in stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        runs = conn.execute("SELECT id, snapshots FROM runs ORDER BY id").fetchall()
        assert len(runs) == 2 and runs[1][1] >= 1
        assert conn.execute("SELECT count(*) FROM snapshots WHERE run_id = 2").fetchone()[0] == runs[1][1]
