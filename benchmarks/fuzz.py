"""Fuzzing, longer: the targets of tests/test_fuzz.py (defined in tests/fuzzing.py) with many more
examples each, counting inputs tried and failures found.

Targets: the duration/size and target parsers, the wire format, the agent socket of a real
service (and a flood of connections), the worker pipe of real worker processes, every CLI
option, and damaged database files under report, runs, --resume and merge. Hypothesis stops a
target at its first failure (after shrinking it to the smallest input) and prints it.

    nice -n 19 python benchmarks/fuzz.py [--scale 10] [--only parsers,wire,agent,worker,cli,db]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import fuzzing

SUITE_EXAMPLES = {"parsers": 100, "targets": 100, "wire": 100, "agent": 60, "worker": 4, "cli": 80, "db": 12}


def fuzz(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None], examples: int) -> tuple[int, str | None]:
    """Run ``check`` on up to ``examples`` inputs; the inputs tried and the failure, if any."""
    tried = 0

    def body(value: Any) -> None:
        nonlocal tried
        tried += 1
        check(value)

    test = settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))(given(strategy)(body))
    try:
        test()
    except Exception:  # noqa: BLE001 - a failure found is the result, printed below
        return tried, traceback.format_exc(limit=3)
    return tried, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10, help="examples per target: this many times the suite's (default 10)")
    parser.add_argument("--only", default="parsers,targets,wire,agent,worker,cli,db")
    args = parser.parse_args()
    chosen = args.only.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="leaksoak-fuzz-"))
    results: list[tuple[str, int, str | None, float]] = []

    def record(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None]) -> None:
        started = time.monotonic()
        tried, failure = fuzz(name, strategy, check, SUITE_EXAMPLES[name] * args.scale)
        results.append((name, tried, failure, time.monotonic() - started))
        print(f"{name}: {tried} inputs, {'1 failure' if failure else 'no failure'} ({time.monotonic() - started:.0f}s)", flush=True)
        if failure:
            print(failure, flush=True)

    def check_parsers(text: str) -> None:
        fuzzing.check_duration(text)
        fuzzing.check_size(text)

    def check_wire(data: bytes) -> None:
        fuzzing.check_channel(data)
        fuzzing.check_channel(data, 1 << 20)

    if "parsers" in chosen:
        record("parsers", fuzzing.PARSER_TEXT, check_parsers)
    if "targets" in chosen:
        record("targets", fuzzing.TARGET_TEXT, fuzzing.check_target)
    if "wire" in chosen:
        record("wire", fuzzing.STREAMS, check_wire)
    if "agent" in chosen:
        service = fuzzing.AgentService(workdir)
        try:
            record("agent", fuzzing.STREAMS, lambda payload: fuzzing.check_agent_request(service, payload))
            fuzzing.flood(service, 1000)
            alive = service.says_hello() and service.serves_http()
            print(f"agent: a flood of 1000 connections, then hello and HTTP: {'served' if alive else 'NOT served'}")
        finally:
            stderr = service.close()
        print(f"agent: the service's stderr {'has a traceback' if 'Traceback' in stderr else 'has no traceback'}")
    if "worker" in chosen:
        record("worker", fuzzing.LINES, fuzzing.check_worker_pipe)
    if "cli" in chosen:
        record("cli", fuzzing.CLI_INPUTS, lambda case: fuzzing.check_cli_option(workdir, *case))
    if "db" in chosen:
        good = workdir / "good.db"
        fuzzing.make_database(good)
        record("db", st.tuples(fuzzing.DAMAGES, st.sampled_from(fuzzing.DB_COMMANDS)),
               lambda case: fuzzing.check_damaged_database(good, workdir, *case))
    total = sum(tried for _, tried, _, _ in results)
    failed = [name for name, _, failure, _ in results if failure]
    print(f"total: {total} inputs over {len(results)} targets, failures in {len(failed)}: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
