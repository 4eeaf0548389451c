"""Process-level metrics of another process, read from outside (psutil, /proc, cgroup files)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

from soak.inprocess.probes.children import ChildProbe
from soak.inprocess.probes.oom import memory_cgroup
from soak.inprocess.probes.probe import Probe, run_probes
from soak.inprocess.probes.resources import FdProbe


@dataclass(frozen=True)
class ProcessSample:
    rss: int | None
    uss: int | None
    """Unique set size: memory freed if the process exited; None where it cannot be read."""
    pss: int | None
    """Proportional set size: shared pages divided among the processes sharing them."""
    threads: int | None
    cgroup_bytes: int | None
    """Memory charged to the process's cgroup (a container's usage), where readable."""
    cgroup_limit: int | None
    """The cgroup's memory limit; None when unlimited or unreadable."""
    pause_ms: float


def external_probes(pid: int) -> list[Probe]:
    """The probes the supervisor runs on a measured process from outside it."""
    return [FdProbe(pid), ChildProbe(pid)]


def read_from_outside(pid: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The process readings of ``pid`` and its outside probes' entries (see ``run_probes``).

    The readings' ``fds`` is the fds probe's total: ``/proc/PID/fd`` is listed once a snapshot.
    """
    process = asdict(sample_process(pid))
    probes = run_probes(external_probes(pid))
    fds = probes[FdProbe.name].get("series")
    process["fds"] = None if fds is None else int(sum(value for _, _, value in fds))
    return process, probes


def sample_process(pid: int) -> ProcessSample:
    """Read the memory and thread count of ``pid``; fields that cannot be read are None, a gone
    process all None. Open fds are the fds probe's (:func:`read_from_outside`)."""
    started = time.perf_counter()
    rss = uss = pss = threads = None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            rss = proc.memory_info().rss
            uss, pss = _smaps_rollup(pid)
            if uss is None:
                try:
                    info = proc.memory_full_info()
                    uss, pss = getattr(info, "uss", None), getattr(info, "pss", None)
                except psutil.AccessDenied:
                    pass
            threads = proc.num_threads()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        pass
    cgroup_bytes, cgroup_limit = _cgroup_memory(pid)
    return ProcessSample(rss, uss, pss, threads, cgroup_bytes, cgroup_limit, (time.perf_counter() - started) * 1000)


def _smaps_rollup(pid: int) -> tuple[int | None, int | None]:
    """USS and PSS from /proc/PID/smaps_rollup (Linux ≥ 4.14): one file, far cheaper than smaps."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as handle:
            fields = {}
            for line in handle:
                parts = line.split()
                if len(parts) >= 3 and parts[0].endswith(":") and parts[2] == "kB":
                    fields[parts[0][:-1]] = int(parts[1]) * 1024
    except (OSError, ValueError):
        return None, None
    if "Pss" not in fields:
        return None, None
    return fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0), fields["Pss"]


def _cgroup_memory(pid: int) -> tuple[int | None, int | None]:
    """(usage, limit) of the process's memory cgroup (v2, else v1), where readable; the limit is
    the smallest from its cgroup up to the root, the one that bites."""
    cgroup = memory_cgroup(pid)
    if cgroup is None:
        return None, None
    limit = cgroup.limit()
    return cgroup.usage(), None if limit is None else limit.bytes
