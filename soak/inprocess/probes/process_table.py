"""Who is whose child: one pass over the process table, shared by the readers of a moment.

A watcher asks for children several times a second: the process tree's poll
(soak.supervisor.tree, every half second) and the child probe of each watched process at each of
its snapshots (soak.inprocess.probes.children). Each answer is a pass over every process (psutil
reads each one's parent from ``/proc/PID/stat``; Linux without ``CONFIG_PROC_CHILDREN`` has no
cheaper way), about 1 ms for 70 processes on a quiet machine and more beside a busy service:
py-spy gave it 40% of the watcher's CPU beside a two-worker gunicorn. Here one pass answers
every question asked within :data:`MAX_AGE_S` of it, so a child is seen at most that late.
"""

from __future__ import annotations

import os
import threading
import time

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


def children(pid: int, recursive: bool = False) -> list[psutil.Process]:
    """The children of ``pid`` (with ``recursive``, every descendant), as psutil's
    ``Process.children`` gives them; raises psutil.NoSuchProcess when ``pid`` is gone."""
    psutil.Process(pid)  # gone: the caller's error, as with psutil's own
    table = _table()
    found: list[psutil.Process] = []
    todo = list(table.get(pid, ()))
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
            todo.extend(table.get(child, ()))
    return found
