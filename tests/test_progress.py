"""Progress of `soak run`: plain lines when stderr is a pipe, a live panel on a real terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import time
from pathlib import Path

from conftest import FAST_LEAKS, REFERENCE, leak_lines, run_soak, soak_command

from soak.analyzers import Analysis
from soak.supervisor.progress import render_panel
from soak.supervisor.results import Progress

LINE = re.compile(
    r"^\[(?P<elapsed>[\dhms.]+) / 14s\] (?P<snapshots>\d+) snapshots, RSS [\d.]+ (B|KiB|MiB|GiB), "
    r"traced [\d.]+ (B|KiB|MiB|GiB), verdict so far: (?P<verdict>leak|suspect|clean|inconclusive)( \(\d+ leaking site\(s\)\))?$"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_progress_lines_when_not_a_terminal(db: Path) -> None:
    # A line at most every 5 s, after a snapshot or a refresh: 14 s gives two with time to spare.
    result = run_soak("run", f"{REFERENCE / 'leaky_dict_cache.py'}:step", "--db", str(db),
                      "--duration", "14s", "--interval", "0.5s")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("soaking ") and "as run 1 for 14s" in lines[0]
    progress = [LINE.match(line) for line in lines[1:]]
    assert len(progress) >= 2 and all(progress), lines
    snapshots = [int(m["snapshots"]) for m in progress if m]
    assert snapshots == sorted(snapshots) and snapshots[0] > 0
    assert "\x1b[" not in result.stderr  # no panel, no escape codes in a log
    assert "verdict: LEAK" in result.stdout


def test_quiet_prints_no_progress(db: Path) -> None:
    result = run_soak("run", "soak.workloads.reference.clean_churn:step", "--db", str(db),
                      "--duration", "6s", "--interval", "0.5s", "--quiet")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "verdict:" in result.stdout


def _read_until(fd: int, pattern: re.Pattern[str], seen: bytearray, deadline: float) -> bool:
    """Read the terminal until ``pattern`` shows (in the text without escape codes) or it closes."""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            return False
        if not chunk:
            return False
        seen.extend(chunk)
        if pattern.search(ANSI.sub("", seen.decode("utf-8", "replace"))):
            return True
    return False


def test_live_panel_on_a_terminal_and_ctrl_c(tmp_path: Path) -> None:
    path = REFERENCE / "leaky_dict_cache.py"
    leak_line = min(leak_lines(path))
    command = [*soak_command(), "run", f"{path}:step", "--db", str(tmp_path / "soak.db"), "--duration", "5m", "--interval", "0.25s"]
    env = {**os.environ, **FAST_LEAKS, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "40"}
    pid, master = pty.fork()  # the child gets a new session whose controlling terminal is the pty
    if pid == 0:
        try:
            os.execvpe(command[0], command, env)
        finally:
            os._exit(127)
    seen = bytearray()
    status = None
    try:
        # The panel's growers table names the leaking line once an analysis finds it.
        panel_row = re.compile(rf"leaky_dict_cache\.py:{leak_line}\s+\+[\d.]+ (KiB|MiB|GiB)\s+leak")
        assert _read_until(master, panel_row, seen, time.monotonic() + 120), ANSI.sub("", seen.decode(errors="replace"))
        # ...and a few seconds more: the sampled tracer finds this leak within 10 snapshots, when
        # one more snapshot can still tip a verdict either way; the report after Ctrl-C must agree.
        enough = re.compile(r"snapshots\s+([3-9]\d|\d{3,})\b")
        assert _read_until(master, enough, seen, time.monotonic() + 120), ANSI.sub("", seen.decode(errors="replace"))
        os.write(master, b"\x03")  # Ctrl-C typed on the terminal: its line discipline sends SIGINT
        _read_until(master, re.compile(r"(?!)"), seen, time.monotonic() + 120)  # read to the end
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(master)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    returncode = os.waitstatus_to_exitcode(status)
    raw = seen.decode("utf-8", "replace")
    text = ANSI.sub("", raw)
    assert returncode == 1, text
    panel = text[text.index("╭"):text.rindex("╯")]
    for label in ("elapsed", "left of 5m00s", "snapshots", "RSS", "traced heap", "verdict", "LEAK", "top growers"):
        assert label in panel, label
    report = text[text.rindex("leaksoak run 1 '"):]
    assert "status: interrupted - SIGINT received" in report
    assert f"leaky_dict_cache.py:{leak_line} in step" in report
    assert "╭" not in report  # the panel stopped before the report
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")  # and gave the cursor back


def _progress(**changes: object) -> Progress:
    fields: dict[str, object] = {
        "elapsed_s": 30.0, "duration_s": float("inf"), "snapshots": 7, "rss": 30 * 2**20, "traced_bytes": 2**20,
        "analysis": Analysis("inconclusive", [], 0.0, 0, 0),
    }
    return Progress(**{**fields, **changes})  # type: ignore[arg-type]


def test_panel_without_a_planned_end_and_before_any_finding() -> None:
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(render_panel("leaksoak watch, run 3: pid:42", _progress()))
    console.print(render_panel("leaksoak watch, run 4: pid:43", _progress(traced_bytes=None)))
    console.print(render_panel("leaksoak run 5", None))
    text = console.export_text()
    assert "until stopped" in text and "RSS 30.0 MiB, traced heap 1.0 MiB" in text and "INCONCLUSIVE" in text
    assert text.count("traced heap") == 1  # no tracer, no traced heap in the second panel
    assert "top growers" not in text
    assert "waiting for the first snapshot" in text
