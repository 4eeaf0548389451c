"""Process-level metrics of another process, read from outside (psutil, /proc)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessSample:
    rss: int | None
    uss: int | None
    """Unique set size: memory freed if the process exited; None where it cannot be read."""
    fds: int | None
    threads: int | None
    pause_ms: float


def sample_process(pid: int) -> ProcessSample:
    """Read the metrics of ``pid``; fields that cannot be read are None, a gone process all None."""
    started = time.perf_counter()
    rss = uss = fds = threads = None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            try:
                info = proc.memory_full_info()
                rss, uss = info.rss, getattr(info, "uss", None)
            except psutil.AccessDenied:
                rss = proc.memory_info().rss
            try:
                fds = proc.num_fds()
            except (psutil.AccessDenied, AttributeError):
                fds = None
            threads = proc.num_threads()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        pass
    return ProcessSample(rss, uss, fds, threads, (time.perf_counter() - started) * 1000)
