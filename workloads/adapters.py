"""Drive a workload function over and over, and run probes between iterations.

Snapshots are taken at an iteration boundary where one can be had, so that a half-finished
call does not add noise to the series: the sync driver parks between two calls, the async
driver runs the probe as a plain callback on the event loop (no coroutine is mid-step then).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class WorkloadRaised(Exception):
    """The workload function raised; ``__cause__`` is the user's exception."""


class _BoundaryCall:
    """A probe waiting to run between two iterations; run by whoever claims it first."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._claimed = False
        self._lock = threading.Lock()

    def claim(self) -> bool:
        with self._lock:
            if self._claimed:
                return False
            self._claimed = True
            return True

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # handed back to the caller of at_boundary
            self.error = exc
        finally:
            self.done.set()


class Driver:
    """Common shape of the sync and async drivers."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.function = function
        self.iterations = 0
        self.at_boundary_count = 0
        self._stop = threading.Event()
        self._pending: _BoundaryCall | None = None

    def run(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def at_boundary(self, fn: Callable[[], T], wait_s: float) -> tuple[T, bool]:
        """Run ``fn`` between two iterations; after ``wait_s`` without one, run it right here.

        Returns fn's result and whether it ran at a boundary.
        """
        call = _BoundaryCall(fn)
        self._post(call)
        if not call.done.wait(wait_s) and call.claim():
            call.run()
            at_boundary = False
        else:
            call.done.wait()
            at_boundary = True
        if call.error is not None:
            raise call.error
        return call.result, at_boundary

    def _post(self, call: _BoundaryCall) -> None:
        self._pending = call

    def _service_pending(self) -> None:
        call, self._pending = self._pending, None
        if call is not None and call.claim():
            call.run()


class SyncDriver(Driver):
    """Calls a plain function in the calling thread until stopped."""

    def run(self) -> None:
        function = self.function
        while not self._stop.is_set():
            try:
                function()
            except Exception as exc:
                raise WorkloadRaised(str(exc)) from exc
            self.iterations += 1
            if self._pending is not None:
                self._service_pending()


class AsyncDriver(Driver):
    """Runs ``concurrency`` callers of an ``async def`` on one asyncio event loop."""

    def __init__(self, function: Callable[[], Coroutine[Any, Any, Any]], concurrency: int = 1) -> None:
        super().__init__(function)
        self.concurrency = concurrency
        self.loop: asyncio.AbstractEventLoop | None = None
        self.own_tasks: set[asyncio.Task[Any]] = set()
        self.on_loop: list[Callable[[asyncio.AbstractEventLoop], Callable[[], None]]] = []
        """Called on the loop's thread once it runs (probes that watch it); each returns what
        to call when the workload stops, on the same thread."""
        self._ready = threading.Event()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        callers = [asyncio.create_task(self._caller(), name=f"soak-caller-{i}") for i in range(self.concurrency)]
        main = asyncio.current_task()
        self.own_tasks = {*callers, *([main] if main else [])}
        stops = [hook(self.loop) for hook in self.on_loop]
        self._ready.set()
        try:
            await asyncio.gather(*callers)
        except BaseException:
            for task in callers:
                task.cancel()
            await asyncio.gather(*callers, return_exceptions=True)
            raise
        finally:
            for stop in stops:
                stop()

    async def _caller(self) -> None:
        function = self.function
        while not self._stop.is_set():
            try:
                await function()
            except Exception as exc:
                raise WorkloadRaised(str(exc)) from exc
            self.iterations += 1

    def _post(self, call: _BoundaryCall) -> None:
        self._ready.wait()
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(self._run_claimed, call)
        except RuntimeError:  # loop already closed: the caller's fallback runs it
            pass

    @staticmethod
    def _run_claimed(call: _BoundaryCall) -> None:
        if call.claim():
            call.run()

    def stop(self) -> None:
        super().stop()
        self._ready.set()


def make_driver(function: Callable[[], Any], *, is_async: bool, concurrency: int = 1) -> Driver:
    if is_async:
        return AsyncDriver(function, concurrency)
    return SyncDriver(function)
