"""When memory runs out, the workload dies, not leaksoak, and the run keeps its evidence.

Real limits: a memory cgroup made by the test (v2 where the memory controller is delegated to our
cgroup's children, else v1) holding the supervisor and its worker both, as in a container; and
RLIMIT_AS (ulimit -v), which needs no privilege, set on the worker by the workload's setup().
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import TEST_WORKLOADS, db_rows, soak_command

from soak.inprocess.probes import oom
from soak.inprocess.probes.oom import MemoryCgroup, OomWatch, memory_cgroup
from soak.inprocess.probes.process import sample_process

LIMIT = 160 * 1024 * 1024
GROWTH = {"LEAKSOAK_TEST_GROW_MIB_PER_S": "20"}


@dataclass
class Cgroup:
    """A memory cgroup made for one test, under this process's own."""

    version: int
    directory: Path

    def enter(self) -> None:
        """Move the calling process in (run in the child between fork and exec)."""
        (self.directory / "cgroup.procs").write_text(str(os.getpid()))

    def pids(self) -> list[int]:
        return [int(p) for p in (self.directory / "cgroup.procs").read_text().split()]

    def remove(self, started: list[int]) -> None:
        """Kill what the test started that is still inside, then remove the cgroup."""
        for pid in self.pids():
            if pid in started:
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.directory.rmdir()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def make_cgroup(limit: int) -> Cgroup | str:
    """A new memory cgroup limited to ``limit`` bytes (swap off), or why none can be made here."""
    own = memory_cgroup(os.getpid())
    if own is None:
        return "no memory cgroup hierarchy is mounted"
    parent = Path(own.directory)
    if own.version == 2 and "memory" not in (parent / "cgroup.subtree_control").read_text().split():
        return f"cgroup v2: the memory controller is not delegated to the children of {own.name}"
    directory = parent / f"leaksoak-oom-test-{uuid.uuid4().hex[:8]}"
    try:
        directory.mkdir()
    except OSError as exc:
        return f"cannot make a memory cgroup under {parent}: {exc.strerror}"
    cgroup = Cgroup(own.version, directory)
    try:
        if own.version == 2:
            (directory / "memory.max").write_text(str(limit))
            if (directory / "memory.swap.max").exists():
                (directory / "memory.swap.max").write_text("0")
        else:
            (directory / "memory.limit_in_bytes").write_text(str(limit))
            try:
                (directory / "memory.swappiness").write_text("0")
            except OSError:
                pass
    except OSError as exc:
        directory.rmdir()
        return f"cannot limit the memory cgroup {directory}: {exc.strerror}"
    return cgroup


@pytest.fixture
def cgroup() -> Iterator[tuple[Cgroup, list[int]]]:
    made = make_cgroup(LIMIT)
    if isinstance(made, str):
        pytest.skip(f"{made} (the RLIMIT_AS variant runs instead)")
    started: list[int] = []
    try:
        yield made, started
    finally:
        made.remove(started)


class Reader:
    """Polls the database as a reader would while the run goes on: every snapshot seen is one
    the supervisor acknowledged (committed)."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1) as conn:
                    self.seen.update(seq for (seq,) in conn.execute("SELECT seq FROM snapshots"))
            except sqlite3.Error:
                pass
            time.sleep(0.02)

    def stop(self) -> set[int]:
        self._stop.set()
        self._thread.join()
        return self.seen


def _soak_run(db: Path, env: dict[str, str], preexec: Callable[[], None] | None) -> tuple[subprocess.Popen[str], Reader]:
    supervisor = subprocess.Popen(
        [*soak_command(), "run", f"{TEST_WORKLOADS}/grows_fast.py:step", "--db", str(db),
         "--duration", "90s", "--interval", "0.25s", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env}, preexec_fn=preexec,
    )
    return supervisor, Reader(db)


def _check_evidence(db: Path, supervisor: subprocess.Popen[str], reader: Reader, source: str) -> dict[str, object]:
    """The run ended oom-killed, with the limit, every acknowledged snapshot and findings."""
    stdout, stderr = supervisor.communicate(timeout=120)
    seen = reader.stop()
    assert supervisor.returncode == 3, stderr  # the workload was lost; leaksoak itself lived
    (run_id, status, reason, counted, verdict), = db_rows(db, "SELECT id, status, status_reason, snapshots, verdict FROM runs")
    assert status == "oom-killed", reason
    assert "ran out of memory" in stderr and "status: oom-killed" in stdout
    seqs = [seq for (seq,) in db_rows(db, "SELECT seq FROM snapshots ORDER BY seq")]
    assert seen and seen <= set(seqs), "a snapshot a reader had seen is gone"
    assert seqs == list(range(len(seqs))) and counted == len(seqs) >= 8
    (t_s, message, data), = db_rows(db, "SELECT t_s, message, data FROM events WHERE kind = 'oom_kill'")
    evidence = json.loads(data)
    assert source in evidence["limit_source"] and source in reason and "ran out of memory" in message
    assert seqs and db_rows(db, "SELECT max(t_s) FROM snapshots")[0][0] <= t_s
    exit_data = json.loads(db_rows(db, "SELECT data FROM events WHERE kind = 'worker_exit'")[0][0])
    report = json.loads(subprocess.run([*soak_command(), "report", "--db", str(db), "--format", "json"],
                                       capture_output=True, text=True, check=True).stdout)
    assert report["run"]["status"] == "oom-killed" and report["run"]["snapshots"] == len(seqs)
    assert report["findings"] and verdict == report["verdict"] == "leak"
    assert any(f["where"] and f["where"]["file"].endswith("grows_fast.py") for f in report["findings"])
    numbers = {"run": run_id, "time_to_oom_s": round(t_s, 1), "snapshots": len(seqs), "seen_by_reader": len(seen),
               "limit_bytes": evidence["limit_bytes"], "supervisor_peak_rss": exit_data["supervisor_peak_rss"],
               "how": evidence["how"]}
    print(f"\nOOM run: {numbers}", file=sys.stderr)
    return numbers


def test_oom_kill_in_a_memory_cgroup_keeps_every_snapshot(cgroup: tuple[Cgroup, list[int]], db: Path) -> None:
    group, started = cgroup
    supervisor, reader = _soak_run(db, GROWTH, group.enter)
    started.append(supervisor.pid)
    numbers = _check_evidence(db, supervisor, reader, f"cgroup v{group.version}")
    assert numbers["limit_bytes"] == LIMIT
    assert "oom_kill rose" in str(numbers["how"]) or "kernel log" in str(numbers["how"])
    assert int(numbers["supervisor_peak_rss"]) < LIMIT  # type: ignore[call-overload]
    assert not group.pids()  # the supervisor ended its run and left; nothing of ours is left inside


def test_out_of_address_space_under_rlimit_as_is_oom_killed_too(db: Path) -> None:
    supervisor, reader = _soak_run(db, {**GROWTH, "LEAKSOAK_TEST_RLIMIT_AS_MIB": "150"}, None)
    numbers = _check_evidence(db, supervisor, reader, "RLIMIT_AS")
    assert "MemoryError" in str(numbers["how"])


def test_plain_sigkill_is_not_called_an_oom_kill(db: Path) -> None:
    supervisor, reader = _soak_run(db, {"LEAKSOAK_TEST_GROW_MIB_PER_S": "0.1"}, None)
    deadline = time.monotonic() + 60
    while len(reader.seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    (worker,) = psutil.Process(supervisor.pid).children()
    worker.send_signal(signal.SIGKILL)
    stdout, stderr = supervisor.communicate(timeout=60)
    reader.stop()
    assert supervisor.returncode == 3, stderr
    (status, reason), = db_rows(db, "SELECT status, status_reason FROM runs")
    assert status == "failed" and "killed by SIGKILL" in reason and "OOM killer" not in reason
    assert "not an OOM kill as far as the cgroup tells" in reason or "no memory cgroup" in reason
    assert not db_rows(db, "SELECT * FROM events WHERE kind = 'oom_kill'")


SERVICE = """
import time
kept = []
while True:
    kept.append(b"x" * (1024 * 1024))  # written: bytes(n) of a fresh mmap would stay untouched
    time.sleep(0.05)
"""


def test_watched_service_oom_killed_in_its_cgroup_ends_the_run_as_oom_killed(cgroup: tuple[Cgroup, list[int]], db: Path) -> None:
    group, started = cgroup
    service = subprocess.Popen([sys.executable, "-c", SERVICE], preexec_fn=group.enter)  # ~20 MB/s, oom_score_adj untouched
    started.append(service.pid)
    threading.Thread(target=service.wait, daemon=True).start()  # its parent reaps it, as a service's would
    watcher = subprocess.run(
        [*soak_command(), "watch", "--pid", str(service.pid), "--tracer", "off", "--db", str(db),
         "--duration", "90s", "--interval", "0.25s", "-q", "--format", "json"],
        capture_output=True, text=True, timeout=120,
    )
    assert watcher.returncode == 3, watcher.stderr
    assert service.returncode == -signal.SIGKILL
    report = json.loads(watcher.stdout)
    assert report["run"]["status"] == "oom-killed" and "OOM killer" in report["run"]["status_reason"]
    (data,), = db_rows(db, "SELECT data FROM events WHERE kind = 'oom_kill'")
    evidence = json.loads(data)
    assert evidence["limit_bytes"] == LIMIT and f"cgroup v{group.version}" in evidence["limit_source"]
    counted, rows = db_rows(db, "SELECT snapshots, (SELECT count(*) FROM snapshots) FROM runs")[0]
    assert counted == rows >= 8
    assert report["findings"] and report["findings"][0]["kind"] == "process"
    print(f"\nwatched OOM: {report['run']['status_reason']}; {rows} snapshots", file=sys.stderr)


@pytest.mark.parametrize("version", [1, 2])
def test_without_the_kernel_log_the_cgroups_counter_tells(version: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oom, "KMSG", str(tmp_path / "no-kmsg"))
    child = tmp_path / "parent" / "child"
    child.mkdir(parents=True)
    events, limit_file = ("memory.events", "memory.max") if version == 2 else ("memory.oom_control", "memory.limit_in_bytes")
    (tmp_path / "parent" / limit_file).write_text(f"{LIMIT}\n")
    (child / limit_file).write_text("max\n" if version == 2 else "9223372036854771712\n")
    (child / events).write_text("oom 0\noom_kill 0\n" if version == 2 else "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    watch = OomWatch(os.getpid())
    watch.cgroup = MemoryCgroup(version, "/parent/child", str(child))
    watch.before = watch.cgroup.counters()
    assert watch.oom_killed() is None and "not an OOM kill" in watch.explain_not()
    (child / events).write_text("oom 1\noom_kill 1\n" if version == 2 else "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    evidence = watch.oom_killed()
    assert evidence is not None and evidence.how == "its cgroup's oom_kill rose from 0 to 1"
    assert evidence.limit_bytes == LIMIT and evidence.limit_source == f"cgroup v{version} {limit_file} of /parent"


def test_a_process_in_a_limited_cgroup_reports_its_usage_and_limit(cgroup: tuple[Cgroup, list[int]]) -> None:
    # The projection's limit: found in v1's memory hierarchy also where /proc/PID/cgroup lists the
    # unified hierarchy's "0::" entry first (a mixed host) but it has no memory controller.
    made, started = cgroup
    child = subprocess.Popen([sys.executable, "-c", "import time; b = bytearray(8 << 20); time.sleep(30)"],
                             preexec_fn=made.enter)
    started.append(child.pid)
    try:
        deadline = time.monotonic() + 10
        sample = sample_process(child.pid)
        while (sample.cgroup_bytes or 0) < 8 << 20 and time.monotonic() < deadline:
            time.sleep(0.1)
            sample = sample_process(child.pid)
        assert sample.cgroup_limit == LIMIT
        assert sample.cgroup_bytes is not None and 8 << 20 <= sample.cgroup_bytes < LIMIT
    finally:
        child.kill()
        child.wait()
