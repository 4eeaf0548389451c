"""Out-of-memory evidence about a process: its memory cgroup, the limit it runs under and where
that limit comes from, the cgroup's OOM-kill counter, and the kernel log.

An OOM kill is a SIGKILL like any other to the parent that reaps it. Whether it was the OOM
killer is asked of the cgroup (v2 ``memory.events`` ``oom_kill``; v1 ``memory.oom_control``
``oom_kill``, or ``memory.failcnt`` on kernels before 4.13) and of the kernel log where it is
readable; a SIGKILL that neither confirms is not called an OOM kill.
"""

from __future__ import annotations

import errno
import os
import re
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any

MOUNTINFO = "/proc/self/mountinfo"
MOUNTS_MAX_AGE_S = 30.0
"""How long a reading of where the cgroup hierarchies are mounted is used: a watcher asks at every
snapshot of every watched process, and parsing the mount table was a fifth of a snapshot's cost."""
_mounts_read: tuple[float, tuple[tuple[str, str] | None, tuple[str, str] | None]] | None = None
KMSG = "/dev/kmsg"
UNLIMITED = 1 << 60
"""v1 reports no limit as a huge page-aligned number (9223372036854771712)."""


def lower_oom_priority() -> None:
    """Make this process the OOM killer's first choice (``oom_score_adj`` 1000), so that when
    memory runs out the workload dies, not leaksoak. Raising it needs no privilege. Only the
    worker does this; a watched service's own setting is never touched."""
    try:
        with open("/proc/self/oom_score_adj", "w", encoding="ascii") as handle:
            handle.write("1000")
    except OSError:
        pass  # not Linux, or /proc is not mounted: nothing to do


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    source: str
    """Where it comes from: ``cgroup v1 memory.limit_in_bytes of /soak-test`` or ``RLIMIT_AS``."""


@dataclass(frozen=True)
class MemoryCgroup:
    version: int
    """1 or 2."""
    name: str
    """The cgroup's path as /proc/PID/cgroup gives it, e.g. ``/system.slice/app.service``."""
    directory: str
    """Its directory under the mounted hierarchy."""

    def limit(self) -> MemoryLimit | None:
        """The smallest limit from this cgroup up to the hierarchy's root: the one that bites."""
        file = "memory.max" if self.version == 2 else "memory.limit_in_bytes"
        best: MemoryLimit | None = None
        name, directory = self.name, self.directory
        while True:
            value = read_int(os.path.join(directory, file))
            if value is not None and value < UNLIMITED and (best is None or value < best.bytes):
                best = MemoryLimit(value, f"cgroup v{self.version} {file} of {name}")
            if name in ("", "/"):
                return best
            name, directory = os.path.dirname(name), os.path.dirname(directory)

    def usage(self) -> int | None:
        """Memory charged to the cgroup now (v2 ``memory.current``, v1 ``memory.usage_in_bytes``)."""
        return read_int(os.path.join(self.directory, "memory.current" if self.version == 2 else "memory.usage_in_bytes"))

    def usage_peak(self) -> int | None:
        """The cgroup's peak usage (v2 ``memory.peak``, Linux ≥ 5.19; v1 ``memory.max_usage_in_bytes``)."""
        return read_int(os.path.join(self.directory, "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"))

    def counters(self) -> dict[str, int]:
        """``oom_kill`` (and ``oom``, ``max`` or ``failcnt``) as the cgroup counts them now."""
        if self.version == 2:
            fields = _read_fields(os.path.join(self.directory, "memory.events"))
            return {key: fields[key] for key in ("oom_kill", "oom", "max") if key in fields}
        fields = _read_fields(os.path.join(self.directory, "memory.oom_control"))
        counters = {"oom_kill": fields["oom_kill"]} if "oom_kill" in fields else {}
        failcnt = read_int(os.path.join(self.directory, "memory.failcnt"))
        return counters | ({"failcnt": failcnt} if failcnt is not None else {})


def memory_cgroup(pid: int) -> MemoryCgroup | None:
    """The memory cgroup of ``pid``: v2 where the unified hierarchy has the memory controller,
    else v1's memory hierarchy; None where there is none or it is not mounted here."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    v1_mount, v2_mount = _mounts()
    for line in lines:
        hierarchy, controllers, name = line.split(":", 2)
        if hierarchy == "0" and controllers == "" and v2_mount is not None:
            directory = _under(v2_mount, name)
            if os.path.exists(os.path.join(directory, "memory.events")):
                return MemoryCgroup(2, name, directory)
    for line in lines:
        hierarchy, controllers, name = line.split(":", 2)
        if "memory" in controllers.split(",") and v1_mount is not None:
            directory = _under(v1_mount, name)
            if os.path.isdir(directory):
                return MemoryCgroup(1, name, directory)
    return None


def _mounts() -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    """(root, mount point) of v1's memory hierarchy and of the unified hierarchy, if mounted; read
    again when the last reading is :data:`MOUNTS_MAX_AGE_S` old."""
    global _mounts_read
    now = time.monotonic()
    if _mounts_read is None or now - _mounts_read[0] >= MOUNTS_MAX_AGE_S:
        _mounts_read = (now, _read_mounts())
    return _mounts_read[1]


def _read_mounts() -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
    v1 = v2 = None
    try:
        with open(MOUNTINFO, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None, None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, after = left.split(), right.split()
        if len(fields) < 5 or len(after) < 3:
            continue
        root, point, fstype = fields[3], fields[4], after[0]
        if fstype == "cgroup2" and v2 is None:
            v2 = (root, point)
        elif fstype == "cgroup" and "memory" in after[2].split(",") and v1 is None:
            v1 = (root, point)
    return v1, v2


def _under(mount: tuple[str, str], name: str) -> str:
    """The directory of cgroup ``name`` in a hierarchy mounted from ``root`` at ``point``."""
    root, point = mount
    relative = name[len(root):] if root != "/" and name.startswith(root) else name
    return os.path.join(point, relative.lstrip("/"))


@dataclass(frozen=True)
class OomEvidence:
    """Why a process's end is taken to be an out-of-memory kill (stored as the oom_kill event's data)."""

    pid: int
    how: str
    """In words, e.g. ``the kernel log names it`` or ``cgroup v1 oom_kill 0 -> 1``."""
    limit_bytes: int | None
    limit_source: str | None
    cgroup: str | None
    counters_before: dict[str, int]
    counters_after: dict[str, int]
    cgroup_peak_bytes: int | None
    kernel_log: str | None
    at_ts: float
    """When it was found gone (epoch seconds)."""

    def as_data(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """``memory limit 160.0 MiB (cgroup v1 memory.limit_in_bytes of /x); cgroup v1 oom_kill 0 -> 1``"""
        limit = f"memory limit {_mib(self.limit_bytes)} ({self.limit_source})" if self.limit_bytes else "no memory limit found"
        return f"{limit}; {self.how}"


class OomWatch:
    """Taken when a process starts being measured; asked, once it has gone, whether it was an OOM kill."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cgroup = memory_cgroup(pid)
        self.before = self.cgroup.counters() if self.cgroup else {}
        self.address_space = self._address_space()

    def _address_space(self) -> MemoryLimit | None:
        """The process's address-space limit (ulimit -v), read while it lives."""
        try:
            with open(f"/proc/{self.pid}/limits", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("Max address space"):
                        soft = line.split()[3]
                        return MemoryLimit(int(soft), "RLIMIT_AS") if soft.isdigit() else None
        except OSError:
            pass
        return None

    def refresh_limit(self) -> None:
        """Read the address-space limit again while the process lives (its setup may have set one)."""
        self.address_space = self._address_space() or self.address_space

    def limit(self, address_space_first: bool = False) -> MemoryLimit | None:
        """The cgroup's limit, else the address-space limit; the other way round for a MemoryError."""
        cgroup = self.cgroup.limit() if self.cgroup else None
        return (self.address_space or cgroup) if address_space_first else (cgroup or self.address_space)

    def rebase(self) -> None:
        """Count OOM kills from now on only (a watched process's cgroup may hold others that die),
        unless the process is already dead (a zombie not yet reaped: its kill is to be counted)."""
        if self.cgroup is None:
            return
        counters = self.cgroup.counters()  # read first: a kill after this still shows as a rise
        try:
            with open(f"/proc/{self.pid}/stat", encoding="utf-8", errors="replace") as handle:
                state = handle.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return
        if state not in ("Z", "X"):
            self.before = counters

    def oom_killed(self) -> OomEvidence | None:
        """Evidence that the process was killed by the OOM killer, or None. Call it once the
        process is known to be gone (for a child: reaped, killed by SIGKILL)."""
        after = self.cgroup.counters() if self.cgroup else {}
        logged = kernel_log_oom_kill(self.pid)
        if logged is not None:
            return self._evidence("the kernel log names it", after, logged)
        for key in ("oom_kill", "failcnt"):  # failcnt (v1 limit hits) only where oom_kill is not counted
            if key in after:
                if after[key] > self.before.get(key, after[key]):
                    return self._evidence(f"its cgroup's {key} rose from {self.before[key]} to {after[key]}", after, None)
                return None
        return None

    def memory_error(self) -> OomEvidence:
        """Evidence of a process that died of MemoryError (an allocation refused, e.g. under ulimit -v)."""
        return self._evidence("an allocation failed with MemoryError", self.cgroup.counters() if self.cgroup else {}, None,
                              address_space_first=True)

    def _evidence(self, how: str, after: dict[str, int], logged: str | None,
                  address_space_first: bool = False) -> OomEvidence:
        limit = self.limit(address_space_first)
        return OomEvidence(
            pid=self.pid, how=how, limit_bytes=limit.bytes if limit else None, limit_source=limit.source if limit else None,
            cgroup=f"v{self.cgroup.version} {self.cgroup.name}" if self.cgroup else None,
            counters_before=self.before, counters_after=after,
            cgroup_peak_bytes=self.cgroup.usage_peak() if self.cgroup else None, kernel_log=logged, at_ts=time.time(),
        )

    def explain_not(self) -> str:
        """What to say of a SIGKILL that is not known to be an OOM kill."""
        if self.cgroup is None:
            return "no memory cgroup to tell whether it was the OOM killer"
        return "not an OOM kill as far as the cgroup tells"


_KILLED = re.compile(r"(?:Killed process|oom-kill:.*[,:]pid=)\s*(\d+)\b")


def kernel_log_oom_kill(pid: int) -> str | None:
    """The kernel log's line saying the OOM killer killed ``pid``, if the log is readable and has one."""
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    found = None
    try:
        for _ in range(100_000):  # the ring buffer holds far fewer records
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # overwritten while read: go on with the next record
                    continue
                break  # EAGAIN: the end of the log
            if not record:
                break
            text = record.decode("utf-8", "replace").split(";", 1)[-1].strip()
            match = _KILLED.search(text)
            if match and int(match.group(1)) == pid and ("Killed process" in text or found is None):
                found = text
    finally:
        os.close(fd)
    return found


def _mib(value: int | None) -> str:
    return f"{(value or 0) / (1024 * 1024):.1f} MiB"


def read_int(path: str) -> int | None:
    """A cgroup file's integer; None if unreadable or not a number (v2 writes ``max`` for no limit)."""
    try:
        with open(path, encoding="ascii") as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" means no limit


def _read_fields(path: str) -> dict[str, int]:
    """``key value`` lines of a cgroup file."""
    try:
        with open(path, encoding="ascii") as handle:
            pairs = [line.split() for line in handle]
    except OSError:
        return {}
    return {pair[0]: int(pair[1]) for pair in pairs if len(pair) == 2 and pair[1].isdigit()}


def peak_rss_bytes() -> int:
    """This process's own peak resident set (ru_maxrss)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
