"""Shared helpers: run the real ``soak`` command in a subprocess against a real SQLite file."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).parent
REPO = TESTS.parent
REFERENCE = REPO / "workloads" / "reference"
TEST_WORKLOADS = TESTS / "workloads"


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


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "soak.db"
