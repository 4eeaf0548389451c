"""Resource probes: open file descriptors by kind, threads by the function that runs them, asyncio
tasks by their coroutine. Each is a series of counts; growth is a ``resource`` finding.

The fds probe reads ``/proc/PID/fd`` from outside (the supervisor hosts it, so a watched process
without the agent has it too); threads and tasks need Python's view and run in-process.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import Counter
from collections.abc import Callable, Collection
from typing import Any

from soak.inprocess.probes.probe import FindingKind, ProbeResult, Reading

OWN_THREAD_PREFIX = "soak-"
"""leaksoak's own threads (control, agent) are named so, and left out of the census."""


class FdProbe:
    """Open file descriptors of ``pid`` by kind: file, socket, pipe, other (Linux ``/proc``)."""

    name = "fds"
    kind: FindingKind = "resource"

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def collect(self) -> ProbeResult:
        directory = f"/proc/{self.pid}/fd"
        kinds: Counter[str] = Counter()
        for entry in os.listdir(directory):  # a gone process raises: the probe reports the error
            try:
                kinds[fd_kind(os.readlink(os.path.join(directory, entry)))] += 1
            except OSError:
                continue  # closed between listing and reading
        return ProbeResult([Reading(kind, "count", n) for kind, n in sorted(kinds.items())])


def fd_kind(target: str) -> str:
    """What an fd's ``/proc`` link points at: ``socket``, ``pipe``, ``file`` or ``other``."""
    if target.startswith("socket:"):
        return "socket"
    if target.startswith("pipe:"):
        return "pipe"
    if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
        return "file"
    return "other"


class ThreadProbe:
    """Live threads by the function they run (``module.qualname``), leaksoak's own left out."""

    name = "threads"
    kind: FindingKind = "resource"

    def collect(self) -> ProbeResult:
        counts: Counter[str] = Counter()
        for thread in threading.enumerate():
            if thread.name.startswith(OWN_THREAD_PREFIX) or thread is threading.main_thread():
                continue
            counts[thread_function(thread)] += 1
        return ProbeResult([Reading(name, "count", n) for name, n in sorted(counts.items())],
                           {name: {"created_by": name} for name in counts})


def thread_function(thread: threading.Thread) -> str:
    """The function a thread runs: its ``target``, or its class's ``run`` when it overrides it."""
    target = getattr(thread, "_target", None)
    if target is None and type(thread).run is not threading.Thread.run:
        target = type(thread).run
    if target is None:
        return type(thread).__qualname__
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', repr(target))}"


class TaskProbe:
    """Live asyncio tasks on the workload's loop by coroutine (``module.qualname``), leaving out
    the driver's own tasks."""

    name = "asyncio_tasks"
    kind: FindingKind = "resource"

    def __init__(self, event_loop: Callable[[], tuple[asyncio.AbstractEventLoop | None, Collection[asyncio.Task[Any]]]]) -> None:
        self._event_loop = event_loop

    def collect(self) -> ProbeResult:
        loop, own = self._event_loop()
        if loop is None or loop.is_closed():
            return ProbeResult([])
        counts: Counter[str] = Counter()
        for task in asyncio.all_tasks(loop):
            if task not in own:
                counts[coroutine_name(task)] += 1
        return ProbeResult([Reading(name, "count", n) for name, n in sorted(counts.items())],
                           {name: {"created_by": name} for name in counts})


def coroutine_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
    module = getattr(coro, "__module__", None)
    qualname = getattr(coro, "__qualname__", None) or (code.co_name if code else type(coro).__qualname__)
    if module is None and code is not None:
        module = os.path.splitext(os.path.basename(code.co_filename))[0]
    return f"{module or '?'}.{qualname}"
