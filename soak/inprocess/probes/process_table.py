"""Who is whose child, asked several times a second by a watcher: the process tree's poll
(soak.supervisor.tree, every half second) and the child probe of each watched process at each of
its snapshots (soak.inprocess.probes.children).

Where the kernel lists a thread's children (``/proc/PID/task/TID/children``, Linux's
``CONFIG_PROC_CHILDREN``), a process's children are read from its threads' lists: a few small
files, whatever else runs on the machine. Elsewhere the answer is a pass over every process
(each one's parent from ``/proc/PID/stat``), about 3 ms for 70 processes beside a busy service,
which py-spy gave 40% of the watcher's CPU beside a two-worker gunicorn; one pass then answers
every question asked within :data:`MAX_AGE_S` of it, so a child is seen at most that late.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Iterable

import psutil

MAX_AGE_S = 0.25
"""How long a pass answers: the tree's poll and a probe asking within it share one pass, and a
child started since is seen by the first question after it."""

_lock = threading.Lock()
_read_at = float("-inf")
_children: dict[int, list[int]] = {}


def _table() -> dict[int, list[int]]:
    """Each process's children's pids, from a pass no older than :data:`MAX_AGE_S`."""
    global _read_at, _children
    with _lock:
        now = time.monotonic()
        if now - _read_at >= MAX_AGE_S:
            table: dict[int, list[int]] = {}
            for child, ppid in _parents():
                table.setdefault(ppid, []).append(child)
            _children, _read_at = table, now
        return _children


def _parents() -> list[tuple[int, int]]:
    """(pid, parent's pid) of every process: from ``/proc`` where there is one (a third of the
    cost of psutil's ``process_iter``, which makes an object of each), else through psutil."""
    if not os.path.isdir("/proc/self"):
        return [(proc.pid, proc.info["ppid"]) for proc in psutil.process_iter(["ppid"]) if proc.info["ppid"] is not None]
    pairs = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                pairs.append((int(entry), int(stat.read().rpartition(b")")[2].split()[1])))
        except (OSError, ValueError, IndexError):
            continue  # gone since the listing
    return pairs


def _listed_children(pid: int) -> list[int]:
    """``pid``'s children from its threads' ``children`` lists (a child of a thread that exited
    is listed under another thread of its process). The kernel reads a list as it stands: a child
    started or reaped during the read may be missed, and is seen at the next question."""
    found: list[int] = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found  # gone since the check: no children
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as listed:
                found.extend(int(child) for child in listed.read().split())
        except OSError:
            continue  # the thread is gone
    return found


@functools.cache
def _kernel_lists_children() -> bool:
    """Whether the kernel lists children per thread here (found out at the first question)."""
    me = os.getpid()
    return os.path.exists(f"/proc/{me}/task/{me}/children")


def _children_of() -> Callable[[int], Iterable[int]]:
    """How to ask for one process's children's pids: the kernel's lists, or a shared pass."""
    if _kernel_lists_children():
        return _listed_children
    table = _table()
    return lambda parent: table.get(parent, ())


def children(pid: int, recursive: bool = False) -> list[psutil.Process]:
    """The children of ``pid`` (with ``recursive``, every descendant), as psutil's
    ``Process.children`` gives them; raises psutil.NoSuchProcess when ``pid`` is gone."""
    psutil.Process(pid)  # gone: the caller's error, as with psutil's own
    children_of = _children_of()
    found: list[psutil.Process] = []
    todo = list(children_of(pid))
    seen = {pid}
    while todo:
        child = todo.pop(0)
        if child in seen:
            continue
        seen.add(child)
        try:
            found.append(psutil.Process(child))
        except psutil.NoSuchProcess:
            continue  # gone since the pass
        if recursive:
            todo.extend(children_of(child))
    return found
