"""Fuzz targets: hostile input for leaksoak's interfaces, and what must hold for each.

Each target is a hypothesis strategy of inputs and a check that raises AssertionError when the
product misbehaves. tests/test_fuzz.py runs them for a bounded number of examples;
benchmarks/fuzz.py runs the same targets far longer and counts inputs and failures.

- parsers: ``parse_duration``, ``parse_size``, ``parse_target``: a finite positive value or one
  BadInput line, never another exception;
- the wire format (``soak.inprocess.protocol.Channel``, used by the worker pipe and the agent socket): a
  message, None at the end, or ProtocolError, whatever the bytes;
- the agent socket of a real service (tests/services/http_service.py under ``python -m
  soak.agent``): every request answered or refused, the service serving throughout (in
  tests/fuzzing_agent.py, re-exported here);
- the worker pipe: a real worker process sent garbage stops without a traceback;
- every CLI option: a bad value is one line, exit 2, nothing written;
- database files (truncated, garbage pages, foreign, newer schema, hot WAL): ``soak report``,
  ``soak runs``, ``soak run --resume`` and ``soak merge`` give one line and exit 2 or work, and
  leave every file as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fuzzing_agent import AgentService as AgentService
from fuzzing_agent import check_agent_request as check_agent_request
from fuzzing_agent import flood as flood
from hypothesis import strategies as st

from soak.durations import parse_duration, parse_size
from soak.errors import BadInput
from soak.inprocess.protocol import PROTOCOL_VERSION, Channel, ProtocolError
from soak.inprocess.targets import parse_target

TESTS = Path(__file__).parent
TEST_WORKLOADS = TESTS / "workloads"

# --- parsers ---------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-10**6, max_value=10**6).map(str),
    st.from_regex(r"[0-9]{1,400}(\.[0-9]{0,400})?", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
UNITS = st.sampled_from(["", "ms", "s", "m", "h", "d", "b", "k", "KiB", "MB", "GiB", "tib", "e5", "x", " ", "\n"])
PARSER_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(lambda parts: "".join(parts), st.lists(st.tuples(NUMBERS, UNITS).map("".join), max_size=4)),
)


def one_line_error(exc: BaseException) -> None:
    message = str(exc)
    assert message and "\n" not in message and "Traceback" not in message, repr(message)


def check_duration(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except BadInput as exc:
        one_line_error(exc)
        return
    assert math.isfinite(seconds) and seconds > 0, (text, seconds)


def check_size(text: str) -> None:
    try:
        size = parse_size(text)
    except BadInput as exc:
        one_line_error(exc)
        return
    assert isinstance(size, int), (text, size)  # what parse_size says it returns, checked at run time
    assert size > 0, (text, size)


TARGET_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds("{}:{}".format, st.text(max_size=30), st.text(max_size=30)),
    st.builds("{}.py:{}".format, st.text(max_size=30), st.text(max_size=30)),
)


def check_target(text: str) -> None:
    try:
        parse_target(text)
    except BadInput as exc:
        one_line_error(exc)


# --- the wire format --------------------------------------------------------------------------

def _deep(depth: int) -> bytes:
    return b'{"v": 1, "type": "hello", "x": ' + b"[" * depth + b"]" * depth + b"}\n"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
MESSAGES = st.builds(
    lambda v, kind, extra: json.dumps({"v": v, "type": kind, **extra}).encode() + b"\n",
    st.one_of(st.just(PROTOCOL_VERSION), JSON_VALUES),
    st.one_of(st.sampled_from(["hello", "snapshot", "stop", "exec", ""]), JSON_VALUES),
    st.dictionaries(st.sampled_from(["seq", "code", "pid", "at_boundary", "sites"]), JSON_VALUES, max_size=3),
)
LINES = st.one_of(
    st.binary(max_size=300),
    MESSAGES,
    MESSAGES.map(lambda line: line[: max(1, len(line) // 2)]),  # truncated mid-message
    st.integers(min_value=1, max_value=100_000).map(_deep),  # deep JSON
    st.integers(min_value=4_000, max_value=20_000).map(lambda n: b'{"v": 1, "type": "hello", "pad": "' + b"x" * n + b'"}\n'),
)
STREAMS = st.lists(LINES, min_size=1, max_size=5).map(b"".join)


def check_channel(data: bytes, max_bytes: int = 4096) -> None:
    """Read ``data`` as a stream of messages: each is a dict with a string type, then None or
    ProtocolError; nothing else may come out."""
    channel = Channel(io.BytesIO(data), io.BytesIO(), max_bytes=max_bytes)
    for _ in range(len(data) + 1):
        try:
            message = channel.receive()
        except ProtocolError as exc:
            one_line_error(exc)
            return
        if message is None:
            return
        assert isinstance(message, dict)  # what receive says it returns, checked at run time
        assert isinstance(message["type"], str)
        assert message["v"] == PROTOCOL_VERSION


# --- the worker pipe ---------------------------------------------------------------------------

def check_worker_pipe(payload: bytes, timeout_s: float = 60) -> None:
    """A real worker (soak.inprocess.worker, as the supervisor starts it) sent ``payload`` on its request
    pipe, then end of file: it answers only in the protocol and ends without a traceback."""
    from soak.supervisor.worker_process import WORKER_MAIN

    request_read, request_write = os.pipe()
    reply_read, reply_write = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_MAIN, "--target", f"{TEST_WORKLOADS / 'sleeper.py'}:step",
         "--request-fd", str(request_read), "--reply-fd", str(reply_write), "--frames", "4",
         "--tracer", "sampled", "--concurrency", "1"],
        pass_fds=(request_read, reply_write), stderr=subprocess.PIPE, text=True,
    )
    os.close(request_read)
    os.close(reply_write)
    replies: list[bytes] = []
    with os.fdopen(reply_read, "rb") as reader, os.fdopen(request_write, "wb") as writer:
        collector = threading.Thread(target=lambda: replies.extend(reader), daemon=True)
        collector.start()
        with contextlib.suppress(BrokenPipeError):
            writer.write(payload)
            writer.flush()
        with contextlib.suppress(BrokenPipeError):
            writer.close()
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError("the worker did not end after its request pipe closed") from None
        collector.join(10)
    assert "Traceback" not in stderr, stderr
    assert proc.returncode in (0, 3), (proc.returncode, stderr)
    kinds = [json.loads(line)["type"] for line in replies]
    assert kinds[:1] == ["hello"] and set(kinds) <= {"hello", "snapshot", "stopped", "failed"}, kinds


# --- the CLI ------------------------------------------------------------------------------------

@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def soak_in_process(*args: str) -> CliResult:
    """``soak ARGS`` through the real entry point (soak.cli.main), in this process."""
    from soak.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_one_line_exit_2(result: CliResult, what: object) -> None:
    assert result.code == 2, (what, result)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("soak: error: "), (what, result.stderr)
    assert "Traceback" not in result.stderr


def _rejected(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except BadInput:
        return True
    return False


BAD_DURATION = PARSER_TEXT.filter(lambda t: _rejected(parse_duration, t))
BAD_SIZE = PARSER_TEXT.filter(lambda t: _rejected(parse_size, t))
BAD_INT = st.one_of(
    st.text(max_size=12).filter(lambda t: not t.strip().lstrip("+-").isdigit()),
    st.integers(max_value=0).map(str),
)
HUGE_INT = st.integers(min_value=2**31, max_value=10**400).map(str)
BAD_CHOICE = st.text(max_size=12).filter(lambda t: t.strip().lower() not in
                                         {"text", "json", "markdown", "html", "leak", "suspect", "never", "sampled",
                                          "exact", "off", "agent", "snapshots", "sites", "csv", "md"})
SURROGATES: tuple[Literal["Cs"], ...] = ("Cs",)  # hypothesis' Unicode category names are Literals
ARGV_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=SURROGATES), max_size=30)

# Per command: the base arguments (valid, and short should a value be accepted after all) and
# each option with values it must refuse. Zero and negative integers are bad for every integer
# option here; huge ones for ports and pids.
SHORT = ["--duration", "1s", "--interval", "0.5s"]
CLI_OPTIONS: dict[str, tuple[list[str], dict[str, st.SearchStrategy[str]]]] = {
    "run": ([f"{TEST_WORKLOADS / 'sleeper.py'}:step", *SHORT], {
        "--duration": BAD_DURATION, "--interval": BAD_DURATION, "--keep-full": BAD_DURATION,
        "--frames": BAD_INT, "--concurrency": BAD_INT, "--thin-every": BAD_INT, "--metrics-port": BAD_INT | HUGE_INT,
        "--tracer": BAD_CHOICE, "--sample-interval": BAD_SIZE, "--memory-limit": BAD_SIZE,
        "--fail-on": BAD_CHOICE, "--format": BAD_CHOICE,
    }),
    "watch": (["--pid", str(os.getpid()), *SHORT], {
        "--pid": BAD_INT | HUGE_INT, "--duration": BAD_DURATION, "--interval": BAD_DURATION, "--keep-full": BAD_DURATION,
        "--thin-every": BAD_INT, "--metrics-port": BAD_INT | HUGE_INT, "--tracer": BAD_CHOICE, "--memory-limit": BAD_SIZE,
        "--fail-on": BAD_CHOICE, "--format": BAD_CHOICE, "--match": st.sampled_from(["(", "[a-", "*x", "a{2,1}"]),
    }),
    "ci": ([f"{TEST_WORKLOADS / 'sleeper.py'}:step", *SHORT], {
        "--duration": BAD_DURATION, "--interval": BAD_DURATION, "--fail-on": BAD_CHOICE, "--tracer": BAD_CHOICE,
        "--sample-interval": BAD_SIZE,
    }),
    "report": ([], {"--format": BAD_CHOICE, "--run": ARGV_TEXT}),
    "export": ([], {"--format": BAD_CHOICE, "--what": BAD_CHOICE}),
    "runs": ([], {"--db": ARGV_TEXT}),
    "fleet": ([], {"--format": BAD_CHOICE}),
    "compare": (["missing-a.db", "missing-b.db"], {"--format": BAD_CHOICE, "--run-base": ARGV_TEXT}),
    "suppress": (["latest"], {"--finding": ARGV_TEXT}),
}
CLI_CASES = st.sampled_from(sorted((command, option) for command, (_, options) in CLI_OPTIONS.items() for option in options))


def check_cli_option(workdir: Path, command: str, option: str, value: str) -> None:
    """``soak COMMAND BASE... OPTION VALUE`` with a missing database: one line, exit 2, no file."""
    db = Path(tempfile.mkdtemp(dir=workdir)) / "fuzz-cli.db"  # one per example: hypothesis replays them
    base, _ = CLI_OPTIONS[command]
    extra = [] if option == "--db" or command in ("compare",) else ["--db", str(db)]
    result = soak_in_process(command, *base, *extra, f"{option}={value}")
    assert_one_line_exit_2(result, (command, option, value))
    assert not db.exists(), f"a refused command wrote its database: {(command, option, value)}"


def cli_values(case: tuple[str, str]) -> st.SearchStrategy[tuple[str, str, str]]:
    command, option = case
    return CLI_OPTIONS[command][1][option].map(lambda value: (command, option, value))


CLI_INPUTS = CLI_CASES.flatmap(cli_values)


# --- database files -----------------------------------------------------------------------------

def make_database(path: Path, *, seconds: str = "2s") -> None:
    """A real database: a short ``soak run`` of a leaking reference workload."""
    env = {**os.environ, "LEAKSOAK_LEAK_SCALE": "4"}
    subprocess.run([sys.executable, "-m", "soak", "run", "soak.workloads.reference.leaky_dict_cache:step", "--db", str(path),
                    "--duration", seconds, "--interval", "0.2s", "-q"], check=False, capture_output=True, env=env, timeout=120)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def make_hot_wal(path: Path) -> int:
    """A database whose writer was SIGKILLed mid-run: its WAL still holds commits. Returns the
    snapshots a reader sees in it."""
    proc = subprocess.Popen([sys.executable, "-m", "soak", "run", "soak.workloads.reference.leaky_dict_cache:step",
                             "--db", str(path), "--duration", "1h", "--interval", "0.1s", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with contextlib.suppress(sqlite3.Error):  # no schema yet
                if committed_snapshots(path) >= 5:
                    break
    finally:
        proc.kill()
        proc.wait()
    assert Path(f"{path}-wal").stat().st_size > 0
    return committed_snapshots(path)


def committed_snapshots(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as conn:
        return int(conn.execute("SELECT count(*) FROM snapshots").fetchone()[0])


DAMAGES = st.one_of(
    st.tuples(st.just("truncate"), st.floats(min_value=0, max_value=0.99)),
    st.tuples(st.just("garbage-page"), st.tuples(st.floats(min_value=0, max_value=0.99), st.binary(min_size=1, max_size=4096))),
    st.tuples(st.just("garbage-file"), st.binary(max_size=8192)),
    st.tuples(st.just("foreign"), st.just(None)),
    st.tuples(st.just("newer-schema"), st.just(None)),
    st.tuples(st.just("zeroed-header"), st.integers(min_value=1, max_value=100)),
)


def damage(good: Path, out: Path, how: tuple[str, Any]) -> None:
    kind, arg = how
    data = good.read_bytes()
    if kind == "truncate":
        out.write_bytes(data[: int(len(data) * arg)])
    elif kind == "garbage-page":
        at, junk = arg
        offset = int(len(data) * at)
        out.write_bytes(data[:offset] + junk + data[offset + len(junk):])
    elif kind == "garbage-file":
        out.write_bytes(arg)
    elif kind == "foreign":
        with contextlib.closing(sqlite3.connect(out)) as conn, conn:
            conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
            conn.execute("INSERT INTO customers (name) VALUES ('x')")
    elif kind == "newer-schema":
        shutil.copy(good, out)
        with contextlib.closing(sqlite3.connect(out)) as conn, conn:
            conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('leaksoak', '9999_x', 'x')")
    elif kind == "zeroed-header":
        out.write_bytes(b"\0" * arg + data[arg:])
    else:  # pragma: no cover
        raise ValueError(kind)


def _files(db: Path) -> dict[str, bytes]:
    """What the database holds: its file and its WAL's commits (the -shm index is not data)."""
    files = {p.name: p.read_bytes() for p in db.parent.glob(db.name + "*") if not p.name.endswith("-shm")}
    return {name: data for name, data in files.items() if data or not name.endswith("-wal")}


DB_COMMANDS = ("report", "runs", "resume", "merge")


def db_command(command: str, db: Path, out: Path) -> list[str]:
    return {
        "report": ["report", "--db", str(db), "--format", "json"],
        "runs": ["runs", "--db", str(db)],
        "resume": ["run", "--resume", "latest", "--db", str(db), "--duration", "0.5s", "-q"],
        "merge": ["merge", str(out), str(db)],
    }[command]


def check_damaged_database(good: Path, workdir: Path, how: tuple[str, Any], command: str) -> None:
    """A damaged database file: one line and exit 2 (or, if SQLite still reads it whole, the
    command works); the file is left as it was, and a refused merge writes nothing."""
    db, out = workdir / "damaged.db", workdir / "merged.db"
    for path in workdir.glob("damaged.db*"):
        path.unlink()
    for path in workdir.glob("merged.db*"):
        path.unlink()
    damage(good, db, how)
    before = _files(db)
    result = soak_in_process(*db_command(command, db, out))
    assert "Traceback" not in result.stderr, (how, command, result.stderr)
    if result.code not in (0, 1):  # 0 or 1: SQLite read what it needed, and the command worked
        assert_one_line_exit_2(result, (how, command))
        assert _files(db) == before, f"{how[0]}: {command} changed the file it refused"
        assert not out.exists() or command != "merge", "a refused merge wrote its output"
