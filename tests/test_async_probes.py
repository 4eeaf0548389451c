"""The async probes on a real event loop in this process, and the async analysis on series with
known answers: what is a block and what is not, what the pool wrapper leaves behind."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import selectors
import threading
import time
from typing import Any, cast

import numpy as np
import pytest

import soak.agent
import soak.inprocess.agent.embedding
from soak.analyzers import Thresholds
from soak.analyzers.loop_health import ProbeData, blocked_loop, hidden_pools
from soak.inprocess.probes.async_health import AsyncProbes
from soak.inprocess.probes.loop_lag import BLOCK_PREFIX, LoopLagProbe
from soak.inprocess.probes.probe import run_probes
from soak.model.finding import ProbeKey

DEFAULT_WORKERS = min(32, (os.cpu_count() or 1) + 4)
"""concurrent.futures' default for a ThreadPoolExecutor, the loop's default executor among them."""


def _readings(probes: AsyncProbes) -> dict[str, Any]:
    return run_probes(probes.probes)


def _series(entry: dict[str, Any]) -> dict[tuple[str, str], float]:
    return {(name, unit): value for name, unit, value in entry["series"]}


def test_a_block_is_named_at_its_line_and_leaksoaks_own_pause_is_not_a_block() -> None:
    probes = AsyncProbes(block_s=0.05)
    out: dict[str, Any] = {}

    async def main() -> None:
        probes.start(asyncio.get_running_loop())
        await asyncio.sleep(0.05)
        with probes.pausing():  # a snapshot taken on the loop, as the worker's is
            time.sleep(0.3)
            out["paused"] = _readings(probes)
        await asyncio.sleep(0.05)
        out["after_pause"] = _readings(probes)
        for _ in range(3):
            time.sleep(0.15)  # the workload's block
            await asyncio.sleep(0.02)
        out["blocked"] = _readings(probes)
        probes.stop()

    asyncio.run(main())
    after_pause = _series(out["after_pause"]["event_loop"])
    assert after_pause[("blocked_s", "seconds")] == 0.0 and after_pause[("lag_max", "seconds")] < 0.05
    blocked = out["blocked"]["event_loop"]
    series = _series(blocked)
    assert series[("blocked_s", "seconds")] >= 0.3 and 0 < series[("own_s", "seconds")] < 0.05
    sites = [name for name, _ in series if name.startswith(BLOCK_PREFIX)]
    assert len(sites) == 1 and sites[0].startswith(f"{BLOCK_PREFIX}test_async_probes.py:{_line('time.sleep(0.15)')} <- ")
    frames = blocked["evidence"][sites[0]]["frames"]
    assert frames[0]["file"] == __file__ and frames[0]["line"] == _line("time.sleep(0.15)")
    assert frames[0]["function"].endswith("main")
    assert blocked["evidence"][sites[0]]["count"] == 3


class _LateSelector(selectors.DefaultSelector):
    """A selector that, once asked, waits ``late_s`` longer than told: the loop thread sits in
    its selector after a heartbeat is due, as when the OS is slow to wake it."""

    late_s = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        late, self.late_s = self.late_s, 0.0
        return super().select(None if timeout is None else timeout + late)


def _block() -> None:
    time.sleep(0.15)  # BLOCKS the loop from a timer callback


def test_a_block_after_the_loop_sat_late_in_its_selector_is_blocked_time() -> None:
    """The watchdog first finds the loop idle in its selector, then (the same heartbeat still
    late) in a blocking call: the block's time is the loop's blocked time as well as its line's."""
    probe = LoopLagProbe(block_s=0.05, heartbeat_s=0.3)
    selector = _LateSelector()
    loop = asyncio.SelectorEventLoop(selector)
    out: dict[str, Any] = {}

    async def main() -> None:
        running = asyncio.get_running_loop()
        probe.attach(running)  # the heartbeat is due in 0.3 s
        selector.late_s = 0.15  # the loop wakes at 0.4 s, so a check at 0.35 s finds it in its selector
        running.call_later(0.25, _block)  # due before the heartbeat: run first when the loop wakes
        await asyncio.sleep(0.8)  # the heartbeat, due at 0.3 s, runs after the block, at 0.55 s
        out["readings"] = run_probes([probe])
        probe.detach()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    series = _series(out["readings"]["event_loop"])
    sites = {name: seconds for (name, _), seconds in series.items() if name.startswith(BLOCK_PREFIX)}
    [site] = sites
    assert site.startswith(f"{BLOCK_PREFIX}test_async_probes.py:{_line('time.sleep(0.15)  # BLOCKS')} <- ")
    [seconds] = sites.values()
    assert seconds > 0.2 and series[("blocked_s", "seconds")] == pytest.approx(seconds)


def _line(text: str) -> int:
    with open(__file__) as source:
        return next(n for n, line in enumerate(source, 1) if line.strip().startswith(text))


def _slow_sum(values: list[int]) -> int:
    """Work that outlasts its submission: one done before ``run_in_executor`` chains its future
    is answered on the loop's own thread, which no coroutine waited on."""
    time.sleep(0.01)
    return sum(values)


def test_submit_is_wrapped_while_watched_never_raises_into_the_workload_and_is_put_back() -> None:
    original = concurrent.futures.ThreadPoolExecutor.submit
    probes = AsyncProbes()
    out: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        probes.start(loop)
        out["wrapped"] = concurrent.futures.ThreadPoolExecutor.submit is not original
        assert await asyncio.to_thread(_slow_sum, [1, 2]) == 3
        assert await loop.run_in_executor(None, time.sleep, 0.01) is None  # type: ignore[func-returns-value]  # the wrapper's result
        out["pools"] = _readings(probes)["thread_pools"]

        def broken(*args: Any) -> None:
            raise RuntimeError("bookkeeping failed")

        probes.pools._answered = broken  # type: ignore[method-assign,assignment]
        out["still_works"] = await asyncio.to_thread(sum, [2, 3])
        probes.stop()
        out["after_stop"] = await asyncio.to_thread(sum, [3, 4])

    asyncio.run(main())
    assert out["wrapped"] and out["still_works"] == 5 and out["after_stop"] == 7
    assert concurrent.futures.ThreadPoolExecutor.submit is original
    assert not [t for t in threading.enumerate() if t.name == "soak-loop-watchdog"]
    evidence = out["pools"]["evidence"]
    submitted = {e["submitted"] for e in evidence.values()}
    assert submitted == {f"{__name__}._slow_sum", "time.sleep"}  # to_thread's partial(context.run, ...) unwrapped
    lines = {e["frames"][0]["line"] for e in evidence.values()}
    assert lines == {_line("assert await asyncio.to_thread(_slow_sum, [1, 2])"), _line("assert await loop.run_in_executor")}
    assert all(e["executor"] == f"ThreadPoolExecutor (the loop's default executor, {DEFAULT_WORKERS} workers)" for e in evidence.values())


async def _pooled() -> int:
    return await asyncio.to_thread(_slow_sum, [1])  # WAITS IN A TASK


def test_a_wait_in_a_task_of_its_own_is_placed_through_the_tasks_awaiting_it() -> None:
    probes = AsyncProbes()

    async def main() -> dict[str, Any]:
        probes.start(asyncio.get_running_loop())
        await asyncio.gather(_pooled(), asyncio.sleep(0))  # GATHERS
        await asyncio.create_task(_pooled())  # AWAITS A TASK
        readings: dict[str, Any] = _readings(probes)["thread_pools"]
        probes.stop()
        return readings

    evidence = asyncio.run(main())["evidence"]
    stacks = sorted([frame["line"] for frame in site["frames"]] for site in evidence.values())
    waits = _line("return await asyncio.to_thread(_slow_sum, [1])")
    assert stacks == sorted([[waits, _line("await asyncio.gather(_pooled(), asyncio.sleep(0))")],
                             [waits, _line("await asyncio.create_task(_pooled())")]])


def test_a_pool_used_from_plain_threads_is_not_recorded() -> None:
    probes = AsyncProbes()

    async def main() -> dict[str, Any]:
        probes.start(asyncio.get_running_loop())
        with concurrent.futures.ThreadPoolExecutor(2) as pool:  # submitted from a thread with no loop
            await asyncio.get_running_loop().run_in_executor(None, lambda: pool.submit(int).result())
        readings: dict[str, Any] = _readings(probes)["thread_pools"]
        probes.stop()
        return readings

    readings = asyncio.run(main())
    expected = f"{__name__}.test_a_pool_used_from_plain_threads_is_not_recorded.<locals>.main.<locals>.<lambda>"
    assert [e["submitted"] for e in readings["evidence"].values()] == [expected]


def test_watch_loop_without_an_agent_is_false_and_harmless() -> None:
    async def main() -> bool:
        return soak.agent.watch_loop()

    assert soak.inprocess.agent.embedding._agent is None and asyncio.run(main()) is False


T = np.arange(0.0, 10.25, 0.25)


def _data(probe: str, values: dict[tuple[str, str], np.ndarray], evidence: dict[str, Any] | None = None) -> ProbeData:
    return ProbeData(probe, values, evidence or {})


def test_a_stall_is_not_a_blocked_loop_and_steady_blocking_is() -> None:
    wall = np.full(len(T), 0.25)
    once = np.zeros(len(T))
    once[30] = 0.25  # one long stall late in the run: one half only
    steady = np.full(len(T), 0.05)  # 20% of every period
    data = _data("event_loop", {("wall_s", "seconds"): wall, (BLOCK_PREFIX + "a.py:1", "seconds"): once,
                                (BLOCK_PREFIX + "b.py:2", "seconds"): steady, ("blocked_s", "seconds"): once + steady})
    findings = blocked_loop(T, data, Thresholds())
    assert [f.key for f in findings] == [ProbeKey("async", "event_loop", BLOCK_PREFIX + "b.py:2", "seconds")]
    assert findings[0].evidence["share"] == pytest.approx(0.2) and findings[0].verdict == "suspect"
    assert blocked_loop(T, data, Thresholds(max_blocked_share=0.25)) == []


def test_a_pool_share_above_its_threshold_in_both_halves_is_a_hidden_pool() -> None:
    callers = np.full(len(T), 0.25 * 4)
    data = _data("thread_pools", {("caller_s", "seconds"): callers, ("c.py:3 <- d.py:4", "seconds"): callers * 0.5,
                                  ("e.py:5 <- f.py:6", "seconds"): callers * 0.05,
                                  ("c.py:3 <- d.py:4", "count"): np.full(len(T), 10.0)})
    [finding] = hidden_pools(T, data, Thresholds())
    assert cast("ProbeKey", finding.key).series == "c.py:3 <- d.py:4" and finding.evidence["share"] == pytest.approx(0.5)
    assert finding.evidence["submits_per_s"] == pytest.approx(40.0)
    assert hidden_pools(T[:4], data, Thresholds()) == []  # too few periods after warm-up


def test_metrics_name_an_async_finding_by_its_line() -> None:
    from soak.analyzers import Analysis
    from soak.judging.analysis import Refreshed, projection
    from soak.model.finding import Finding, Frame
    from soak.supervisor.metrics import published_findings

    frames = [{"file": "/app/llmclient/client.py", "line": 28, "function": "LLMClient.complete"}]
    row = Finding("f1", "async", "suspect", [Frame.of(frame) for frame in frames], "application", None, 0.0, 0.0, None, None,
                  None, None, "thread_pools", {"frames": frames, "share": 0.9})
    published = published_findings(Refreshed(Analysis("suspect", [], 0.0, 10, 1), [row], 0.0, projection([], 0.0, None)), 5)
    assert published["findings"][0]["where"] == "client.py:28"
    assert published["findings"][0]["function"] == "LLMClient.complete"
