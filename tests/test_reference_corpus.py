"""The reference corpus itself, cheaply: ground truth is present and true to life, no soaks.

Each workload is loaded fresh from its file and called in this process for a fraction of a
second, with ``tracemalloc`` started just for the measurement (one frame: cheap) and the steps'
I/O pause (``time.sleep`` / ``asyncio.sleep``) skipped so that bounded caches fill at once.
A leaky workload's retained memory must keep growing, mostly at its ``# LEAK`` lines; a clean
one's must stop growing.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import inspect
import time
import tracemalloc
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REFERENCE, leak_lines

from soak.workloads import reference
from soak.workloads.reference import _rates

NAMES = reference.names()
LEAKY = [name for name in NAMES if name.startswith("leaky_")]
CLEAN = [name for name in NAMES if name.startswith("clean_")]
KIB = 1024


def _load(name: str) -> ModuleType:
    """A fresh copy of the workload module (its own caches and counters), from its file."""
    path = REFERENCE / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_corpus_test_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Driver:
    """Calls a workload's step over and over; async steps on one event loop of their own."""

    def __init__(self, module: ModuleType) -> None:
        self.step = module.step
        self.loop = asyncio.new_event_loop() if inspect.iscoroutinefunction(module.step) else None

    def run_for(self, seconds: float, min_calls: int = 0) -> int:
        """Call for ``seconds``, and on until ``min_calls`` calls if that takes longer (within 2 s)."""
        calls = 0
        start = time.perf_counter()

        def more() -> bool:
            elapsed = time.perf_counter() - start
            return elapsed < seconds or (calls < min_calls and elapsed < 2.0)

        if self.loop is None:
            while more():
                self.step()
                calls += 1
            return calls

        async def many() -> int:
            nonlocal calls
            while more():
                await self.step()
                calls += 1
            return calls

        return self.loop.run_until_complete(many())

    def close(self) -> None:
        if self.loop is None:
            return

        async def cancel_pending() -> None:
            pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        self.loop.run_until_complete(cancel_pending())
        self.loop.close()


def _retained() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


@pytest.fixture
def no_io_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = asyncio.sleep

    async def no_pause(delay: float, result: object = None) -> object:
        return await real_sleep(0, result)

    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    monkeypatch.setattr(asyncio, "sleep", no_pause)


@pytest.fixture
def scale_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_rates.SCALE_VARIABLE, raising=False)
    monkeypatch.setenv("LEAKSOAK_LATE_ONSET_S", "0")  # the late leak starts at once here


def test_names_lists_workloads_not_helpers() -> None:
    assert "_rates" not in NAMES and all(not name.startswith("_") for name in NAMES)
    assert set(NAMES) == set(LEAKY) | set(CLEAN)
    assert len(LEAKY) >= 12 and len(CLEAN) >= 10


@pytest.mark.parametrize("name", NAMES)
def test_workload_has_its_ground_truth(name: str) -> None:
    module = _load(name)
    assert callable(module.step) and not inspect.signature(module.step).parameters
    assert (module.__doc__ or "").strip()
    assert module.EXPECTED == ("leak" if name.startswith("leaky_") else "clean")
    lines = (REFERENCE / f"{name}.py").read_text().splitlines()
    marked = leak_lines(REFERENCE / f"{name}.py")
    if module.EXPECTED == "leak":
        assert marked, "a leaky workload marks its leaking lines with # LEAK"
        assert all(lines[n - 1].split("#")[0].strip() for n in marked), "a # LEAK marker ends a line of code"
        library = getattr(module, "EXPECTED_LIBRARY", None)
        assert library is None or (isinstance(library, str) and library)
    else:
        assert not marked and not hasattr(module, "EXPECTED_LIBRARY")


def test_leak_rate_is_even_deterministic_and_scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_rates.SCALE_VARIABLE, raising=False)
    every_fourth = _rates.LeakRate(0.25)
    assert [every_fourth() for _ in range(8)] == [False, False, False, True] * 2
    assert all(_rates.LeakRate()() for _ in range(3))
    monkeypatch.setenv(_rates.SCALE_VARIABLE, "0.1")
    slow = _rates.LeakRate(0.3)
    assert sum(slow() for _ in range(1000)) == 30
    ids = _rates.fresh_ids(0.5)
    assert len({next(ids) for _ in range(200)}) == 1 + 10  # the first id, then one new in twenty (0.5 × 0.1)
    monkeypatch.setenv(_rates.SCALE_VARIABLE, "0")
    with pytest.raises(ValueError, match="LEAKSOAK_LEAK_SCALE"):
        _rates.scale()


@pytest.mark.parametrize("name", LEAKY)
def test_leaky_workload_grows_at_its_leak_lines(name: str, scale_one: None, no_io_pause: None) -> None:
    path = REFERENCE / f"{name}.py"
    tracemalloc.start(10)
    try:
        module = _load(name)
        driver = _Driver(module)
        try:
            driver.run_for(0.03)
            before, first = _retained(), tracemalloc.take_snapshot()
            calls = driver.run_for(0.2, min_calls=150)  # the heavy-churn workload is slow
            after, second = _retained(), tracemalloc.take_snapshot()
        finally:
            driver.close()
    finally:
        tracemalloc.stop()
    assert calls >= 150
    assert after - before >= 4 * KIB, f"{name} kept only {after - before} bytes over {calls} calls"
    top = max(second.compare_to(first, "traceback"), key=lambda stat: stat.size_diff)
    frames = list(reversed(top.traceback))  # allocation frame first
    library = getattr(module, "EXPECTED_LIBRARY", None)
    own = [frame for frame in frames if Path(frame.filename) == path]
    assert own, f"the fastest-growing site is not reached from {name}: {frames}"
    if library is None:
        assert Path(frames[0].filename) == path and frames[0].lineno in leak_lines(path), frames
    else:
        assert Path(frames[0].filename) != path, "the leak should be allocated inside the library"
        assert own[0].lineno in leak_lines(path), frames


@pytest.mark.parametrize("name", CLEAN)
def test_clean_workload_stays_bounded(name: str, no_io_pause: None, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load(name)
    settle_s = getattr(module, "SETTLE_S", None)
    if settle_s is not None:
        monkeypatch.undo()  # time-based (a TTL): run at its own pace, so its size is steady
    tracemalloc.start(1)
    driver = _Driver(module)
    try:
        # The highest retained memory (sampled every 10 ms) until the workload has settled plus a
        # while, then over a last window: a bounded workload's last high is no new high. Highs,
        # not single readings, so that a sawtooth or a dict's resize cycle is seen whole.
        driver.run_for(0, min_calls=getattr(module, "SETTLE_CALLS", 0))
        earlier = _high_over(driver, (settle_s or 0) + 0.2, min_calls=600)
        last = _high_over(driver, 0.1, min_calls=300)
    finally:
        driver.close()
        tracemalloc.stop()
    assert last - earlier <= max(64 * KIB, 0.1 * earlier), f"{name}: high {earlier} bytes, then {last}"


def _high_over(driver: _Driver, seconds: float, min_calls: int) -> int:
    """The highest traced memory over ``seconds`` and at least ``min_calls`` calls (within 5 s more).

    Counting calls as well as time: a window the machine stalled through holds too few calls to
    see a cycle whole (garbage awaiting its collection, a sawtooth's batch), and its high is low.
    """
    # Each window starts from what is reachable, as a worker's snapshot does: cyclic garbage that
    # reached the oldest generation waits for a full collection, which a test process whose own
    # heap has grown over hundreds of tests runs rarely, so it would pile up across windows.
    gc.collect()
    high, calls = 0, 0
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and (calls >= min_calls or elapsed >= seconds + 5):
            return high
        calls += driver.run_for(0.01)
        high = max(high, tracemalloc.get_traced_memory()[0])


def test_late_onset_is_clean_before_its_onset(monkeypatch: pytest.MonkeyPatch, no_io_pause: None) -> None:
    monkeypatch.setenv("LEAKSOAK_LATE_ONSET_S", "60")
    tracemalloc.start(1)
    try:
        module = _load("leaky_late_onset")
        assert module.ONSET_S == 60
        driver = _Driver(module)
        driver.run_for(0.05)
        before = _retained()
        driver.run_for(0.2)
        after = _retained()
    finally:
        tracemalloc.stop()
    assert after - before < 8 * KIB
