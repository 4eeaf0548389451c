"""Shared helpers: run the real ``soak`` command in a subprocess against a real SQLite file."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from servers import Served

TESTS = Path(__file__).parent
REPO = TESTS.parent
REFERENCE = REPO / "workloads" / "reference"
TEST_WORKLOADS = TESTS / "workloads"
INSTALLED_WORKLOADS = Path(importlib.util.find_spec("soak.workloads").origin or "").parent  # type: ignore[union-attr]
"""The soak.workloads package where it is installed: the checkout's workloads/ under ``pip install -e``,
site-packages under a wheel (.ci/versions). A ``package.module:func`` target runs from here."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` right now, for a server a test starts."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def soak_command() -> list[str]:
    script = shutil.which("soak", path=os.path.dirname(sys.executable)) or shutil.which("soak")
    return [script] if script else [sys.executable, "-m", "soak"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.stdout)
        return report


FAST_LEAKS = {"LEAKSOAK_LEAK_SCALE": "4"}
"""Reference leaks leak on every call (their full rate), so that they show in a few seconds."""
RULES_TODAY = datetime.date(2026, 6, 15)
"""The day the suppression tests judge rules' expiry dates on."""
MB = 1000**2


def run_soak(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    proc = subprocess.run(
        [*soak_command(), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **FAST_LEAKS, **(env or {})},
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def leak_lines(path: Path) -> set[int]:
    """Line numbers marked ``# LEAK`` in a reference workload."""
    return {n for n, line in enumerate(path.read_text().splitlines(), 1) if line.rstrip().endswith("# LEAK")}


def db_rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def wait_for_snapshots(db: Path, n: int, timeout: float = 60) -> None:
    """Until a run in ``db`` has stored ``n`` snapshots (an AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if db_rows(db, "SELECT count(*) FROM snapshots")[0][0] >= n:
                return
        except sqlite3.OperationalError:  # the schema is not there yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"fewer than {n} snapshots after {timeout}s")


def killed_run(db: Path, *args: str, snapshots: int = 3) -> None:
    """``soak run ARGS --db DB -q``, killed (SIGKILL) once it has stored ``snapshots`` snapshots: a run to resume."""
    first = subprocess.Popen([*soak_command(), "run", *args, "--db", str(db), "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_snapshots(db, snapshots)
    finally:
        first.kill()
        first.wait()


def resumed_while_scraped(db: Path, url: str, *args: str) -> tuple[str, Result]:
    """``soak run --resume latest --db DB ARGS``, and the first answer of ``url`` while it runs ('' if none within 30 s)."""
    resumed = subprocess.Popen([*soak_command(), "run", "--resume", "latest", "--db", str(db), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    scraped = ""
    try:
        deadline = time.monotonic() + 30
        while not scraped and time.monotonic() < deadline and resumed.poll() is None:
            try:
                scraped = urllib.request.urlopen(url, timeout=5).read().decode()
            except OSError:
                time.sleep(0.2)
    finally:
        out, err = resumed.communicate(timeout=120)
    return scraped, Result(resumed.returncode, out, err)


def metric_families(port: int) -> dict[str, list[Any]] | None:
    """The metric families ``/metrics`` on 127.0.0.1:PORT serves, by name, with their samples; None
    (after a short pause, for a polling loop) while nothing answers there yet."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        time.sleep(0.3)
        return None
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def verdicts(families: dict[str, list[Any]]) -> dict[str, float]:
    """The ``leaksoak_verdict`` gauge of scraped families: 1.0 at the run's verdict."""
    return {s.labels["leaksoak_verdict"]: s.value for s in families.get("leaksoak_verdict", [])}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "soak.db"


@pytest.fixture
def served() -> Iterator[list[Served]]:
    """Servers a test starts (tests/servers.py), each closed when the test ends."""

    started: list[Served] = []
    yield started
    for server in started:
        server.close()


_LEAKSOAK = os.path.join(str(Path(importlib.util.find_spec("soak").origin or "").parent), "")  # type: ignore[union-attr]


def assert_not_leaksoaks_own(finding: dict[str, Any]) -> None:
    """An async finding is never placed in leaksoak's own code (the workloads it ships aside) nor
    in ``threading.py`` (an idle point after a block returned, ``Event.is_set``)."""
    for place in (finding["where"], finding.get("call_site")):
        if place:
            own = place["file"].startswith(_LEAKSOAK) and not place["file"].startswith(os.path.join(str(INSTALLED_WORKLOADS), ""))
            assert not own and os.path.basename(place["file"]) != "threading.py", finding
