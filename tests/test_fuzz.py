"""Fuzzing with hypothesis, bounded for the suite (benchmarks/fuzz.py runs the same targets longer).

Targets and what must hold for each are in tests/fuzzing.py; every failure fuzzing found has an
explicit example here (``@example``), so it stays fixed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fuzzing
import pytest
from fuzzing import (
    CLI_INPUTS,
    DAMAGES,
    DB_COMMANDS,
    LINES,
    PARSER_TEXT,
    STREAMS,
    TARGET_TEXT,
    AgentService,
    check_agent_request,
    check_channel,
    check_cli_option,
    check_damaged_database,
    check_duration,
    check_size,
    check_target,
    check_worker_pipe,
)
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=100, deadline=None, derandomize=True)



@FAST
@given(PARSER_TEXT)
@example("9" * 400)  # parse_size: float overflow to inf, then int(inf)
@example("9" * 400 + "s")  # parse_duration: an infinite duration
@example("0.0000001")  # parse_size: rounds down to 0 bytes
def test_duration_and_size_parsers(text: str) -> None:
    check_duration(text)
    check_size(text)


@FAST
@given(TARGET_TEXT)
def test_target_parser(text: str) -> None:
    check_target(text)


@FAST
@given(STREAMS)
@example(fuzzing._deep(100_000))  # RecursionError out of json.loads
def test_wire_format(data: bytes) -> None:
    check_channel(data, max_bytes=4096)
    check_channel(data, max_bytes=1 << 20)


@pytest.fixture(scope="module")
def agent_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentService]:
    service = AgentService(tmp_path_factory.mktemp("agent-fuzz"))
    yield service
    stderr = service.close()
    assert "Traceback" not in stderr, stderr


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(payload=STREAMS)
@example(payload=fuzzing._deep(3_000))  # a RecursionError in the agent's connection thread
def test_agent_socket(agent_service: AgentService, payload: bytes) -> None:
    check_agent_request(agent_service, payload)


def test_agent_flood_of_connections_and_the_service_serves_on(agent_service: AgentService) -> None:
    fuzzing.flood(agent_service, 300)
    assert agent_service.says_hello() and agent_service.serves_http()
    assert agent_service.proc.poll() is None


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(LINES)
@example(fuzzing._deep(100_000))  # RecursionError in the worker's control thread
@example(b'{"v": 1, "type": "snapshot", "seq": {"a": [1]}}\n')
def test_worker_pipe(payload: bytes) -> None:
    check_worker_pipe(payload)


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(CLI_INPUTS)
@example(("run", "--frames", "abc"))  # click's usage block (several lines) instead of one
@example(("watch", "--pid", "99999999999999999999"))
@example(("run", "--metrics-port", "0"))
@example(("ci", "--interval", ""))  # taken as the default (found by benchmarks/fuzz.py)
def test_cli_options(tmp_path: Path, case: tuple[str, str, str]) -> None:
    check_cli_option(tmp_path, *case)


@pytest.fixture(scope="module")
def good_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db-fuzz") / "good.db"
    fuzzing.make_database(path)
    return path


@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(how=DAMAGES, command=st.sampled_from(DB_COMMANDS))
@example(how=("foreign", None), command="merge")
@example(how=("newer-schema", None), command="resume")
@example(how=("truncate", 0.5), command="report")
def test_damaged_database_files(good_database: Path, tmp_path_factory: pytest.TempPathFactory,
                                how: tuple[str, Any], command: str) -> None:
    check_damaged_database(good_database, tmp_path_factory.mktemp("damaged"), how, command)


def test_hot_wal_of_a_killed_writer_is_read_whole(tmp_path: Path) -> None:
    """A database whose writer was SIGKILLed, its WAL not checkpointed: every command reads every
    committed snapshot, and a resume continues the series."""
    db = tmp_path / "hot.db"
    seen = fuzzing.make_hot_wal(db)
    for args in (["report", "--db", str(db), "--format", "json"], ["runs", "--db", str(db)],
                 ["merge", str(tmp_path / "merged.db"), str(db)]):
        result = fuzzing.soak_in_process(*args)
        assert result.code in (0, 1) and "Traceback" not in result.stderr, (args, result)
    assert fuzzing.committed_snapshots(db) == seen
    resumed = fuzzing.soak_in_process("run", "--resume", "latest", "--db", str(db), "--duration", "1s", "-q")
    assert resumed.code in (0, 1), resumed
    assert fuzzing.committed_snapshots(db) > seen


def test_damage_found_only_by_a_query_is_one_line(good_database: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Found by benchmarks/fuzz.py: a zeroed byte mid-file passes every check at open time and
    fails inside a query (malformed image, or text that is not UTF-8)."""
    for how in [("garbage-page", (0.5, b"\x00")), ("garbage-page", (0.5, b"\x80" * 64))]:
        for command in fuzzing.DB_COMMANDS:
            check_damaged_database(good_database, tmp_path_factory.mktemp("damaged"), how, command)
