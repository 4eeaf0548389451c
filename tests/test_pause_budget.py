"""The pause budget (soak.inprocess.probes.budget): its rationing on a fake clock, then in a real worker,
with its option on ``soak run`` and the agent; and snapshots that never overlap."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_WORKLOADS, db_rows, run_soak

from soak.agent import Agent
from soak.errors import BadInput
from soak.inprocess.probes.budget import AGENT_BUDGET, CREDIT_S, MAX_EVERY_S, WORKER_BUDGET, PauseBudget, parse_pause_budget
from soak.inprocess.probes.inprocess import InProcessProbes
from soak.supervisor.worker_process import WorkerProcess


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_job_that_never_ran_goes_first_then_waits_for_its_share() -> None:
    clock = Clock()
    budget = PauseBudget(0.02, clock)
    assert budget.allows("types")  # never ran: whatever it may cost
    budget.ran("types", 0.1)  # 100 ms, and 100 ms more for the next: at 2%, that fits after 10 s
    clock.now += 9.9
    assert not budget.allows("types") and budget.deferred == {"types": 1}
    clock.now += 0.2
    assert budget.allows("types")
    assert budget.allows("holders")  # another job, never run: first too


def test_every_pause_counts_against_the_share() -> None:
    clock = Clock()
    budget = PauseBudget(0.02, clock)
    budget.ran("types", 0.01)
    clock.now += 1.0  # 20 ms allowed so far, 10 ms spent by the census...
    budget.spend(0.015)  # ...and 15 ms by the rest of a snapshot: no room for another census
    assert not budget.allows("types")
    clock.now += 1.0
    assert budget.allows("types")
    assert budget.spent_s == pytest.approx(0.025) and budget.share_spent() == pytest.approx(0.0125)


def test_each_job_runs_at_least_every_max_every_whatever_it_costs() -> None:
    clock = Clock()
    budget = PauseBudget(0.02, clock, max_every_s=10.0)
    budget.ran("gc_collect", 5.0)  # would need 250 s of budget
    clock.now += 9.9
    assert not budget.allows("gc_collect")
    clock.now += 0.1
    assert budget.allows("gc_collect")
    assert PauseBudget(0.02).max_every_s == MAX_EVERY_S == 60.0


def test_unspent_budget_is_kept_for_a_minute_at_most() -> None:
    clock = Clock()
    budget = PauseBudget(0.02, clock, max_every_s=math.inf)
    budget.ran("types", 1.0)
    budget.ran("holders", 1.5)
    clock.now += 3600.0  # an hour's share is 72 s of pause: of what is unspent, 1.2 s is kept
    assert CREDIT_S * 0.02 == pytest.approx(1.2)
    assert budget.allows("types") and not budget.allows("holders")


def test_an_infinite_budget_rations_nothing() -> None:
    clock = Clock()
    budget = PauseBudget(math.inf, clock)
    budget.ran("types", 100.0)
    assert budget.allows("types")


@pytest.mark.parametrize(("text", "share"), [("2%", 0.02), ("0.5%", 0.005), ("0.02", 0.02), ("inf", math.inf)])
def test_a_pause_budget_is_a_share_or_inf(text: str, share: float) -> None:
    assert parse_pause_budget(text) == share


@pytest.mark.parametrize("text", ["0", "0%", "100%", "1", "-1%", "nan", "lots", ""])
def test_a_bad_pause_budget_is_refused(text: str) -> None:
    with pytest.raises(BadInput, match="--pause-budget"):
        parse_pause_budget(text)


def test_the_defaults_worker_and_agent() -> None:
    assert InProcessProbes(None).budget.share == WORKER_BUDGET == 0.02
    assert Agent("/nonexistent/agent.sock", tracer="off").pause_budget == AGENT_BUDGET == 0.01
    assert Agent("/nonexistent/agent.sock", tracer="off", pause_budget=0.05).pause_budget == 0.05


def test_soak_run_refuses_a_bad_pause_budget_in_one_line(db: Path) -> None:
    result = run_soak("run", f"{TEST_WORKLOADS / 'sleeper.py'}:step", "--db", str(db), "-d", "2s", "--pause-budget", "200%")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--pause-budget" in result.stderr, result.stderr
    assert not db.exists()


def test_the_agent_refuses_a_bad_pause_budget_in_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "app.py"
    script.write_text("print('ran')\n")
    proc = subprocess.run([sys.executable, "-m", "soak.agent", "--pause-budget", "lots", "--", str(script)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--pause-budget" in proc.stderr and "ran" not in proc.stdout
    assert proc.stderr.strip().count("\n") == 0, proc.stderr


@pytest.fixture
def big_worker(request: pytest.FixtureRequest) -> Iterator[WorkerProcess]:
    budget, max_every = request.param
    worker = WorkerProcess(f"{TEST_WORKLOADS / 'big_heap.py'}:step", frames=5, tracer="sampled", concurrency=1,
                           pause_budget=budget, pause_max_every_s=max_every)
    try:
        assert worker.wait_ready()["type"] == "hello"
        yield worker
    finally:
        worker.stop(grace_s=5)


MAX_EVERY = 1.5
"""Stands for the 60 s of MAX_EVERY_S, to keep the test short."""


@pytest.mark.parametrize("big_worker", [(1e-5, MAX_EVERY)], indirect=True)
def test_on_a_big_heap_the_census_is_rationed_but_runs_every_max_every(big_worker: WorkerProcess) -> None:
    def rationed(seq: int) -> set[str]:
        body = big_worker.snapshot(seq, timeout_s=30)
        assert body is not None
        pauses = body["pause_ms"]
        assert isinstance(pauses, dict)
        return {job for job in ("gc_collect", "types") if job in pauses}

    # at 0.001% a census of milliseconds waits minutes for its budget: only MAX_EVERY lets it run
    assert rationed(1) == {"gc_collect", "types"}  # never ran: first
    assert rationed(2) == set() and rationed(3) == set()
    time.sleep(MAX_EVERY)
    assert rationed(4) == {"gc_collect", "types"}
    assert rationed(5) == set()


@pytest.mark.parametrize("big_worker", [(math.inf, MAX_EVERY)], indirect=True)
def test_an_infinite_budget_runs_the_census_every_snapshot(big_worker: WorkerProcess) -> None:
    for seq in range(1, 4):
        body = big_worker.snapshot(seq, timeout_s=30)
        assert body is not None
        probes, counted = body["probes"], body["gc_objects"]
        assert isinstance(probes, dict) and "types" in probes and isinstance(counted, int) and counted > 100_000


def test_a_snapshot_due_while_the_previous_is_in_progress_is_skipped_and_shown(db: Path) -> None:
    # each snapshot waits for the end of an 0.8 s iteration; one is due every 0.25 s
    result = run_soak("run", f"{TEST_WORKLOADS / 'slow_step.py'}:step", "--db", str(db), "-d", "4s", "-i", "0.25s")
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = db_rows(db, "SELECT message, data FROM events WHERE kind = 'snapshot_skipped'")
    assert skipped, db_rows(db, "SELECT kind, message FROM events")
    assert "still in progress" in skipped[0][0]
    assert "snapshot_skipped" in result.stdout  # the report's events
    # no two snapshots of the worker overlapped: each answered before the next was asked
    requested = db_rows(db, "SELECT count(*) FROM snapshots")[0][0]
    assert requested < 4 / 0.25


def test_the_agent_skips_a_snapshot_while_another_is_in_progress() -> None:
    agent = Agent("/nonexistent/agent.sock", tracer="off")
    probes = InProcessProbes(None)
    assert agent._answer({"type": "snapshot", "seq": 1}, probes)["type"] == "snapshot"  # type: ignore[index]  # noqa: SLF001
    with agent._collect_lock:  # noqa: SLF001 - another client's snapshot in progress
        reply = agent._answer({"type": "snapshot", "seq": 2}, probes)  # noqa: SLF001
    assert reply == {"type": "error", "skipped": True, "message": "the previous snapshot is still in progress"}
