"""Child processes of the measured process by the program they run, read from outside.

A child that is started and never waited for stays in the process table as a zombie until its
parent reaps it; one started and never stopped keeps running. Either way the count of children
running a program grows, and each program is a series of this probe (``sleep``, or
``true (not reaped)`` for exited children nobody waited for), judged like every other count.
leaksoak's own helper processes (``--native``'s reader) are left out.

This probe is the example of what adding one takes: this module, and one line in the host's
list of probes (``soak.inprocess.probes.process.external_probes``).
"""

from __future__ import annotations

from collections import Counter

import psutil

from soak.inprocess.probes import process_table
from soak.inprocess.probes.native_reader import READER_MAIN
from soak.inprocess.probes.probe import FindingKind, ProbeResult, Reading

NOUN = "child processes"
NOT_REAPED = " (not reaped)"
"""Appended to a program's series for children that exited and were never waited for."""


class ChildProbe:
    """Direct children of ``pid`` by program name, zombies apart from running ones."""

    name = "children"
    kind: FindingKind = "resource"

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def collect(self) -> ProbeResult:
        counts: Counter[str] = Counter()
        commands: dict[str, str] = {}
        for child in process_table.children(self.pid):  # a gone process raises: the probe's error
            try:
                with child.oneshot():
                    status, program = child.status(), child.name()
                    command = _command(child)
            except psutil.NoSuchProcess:
                continue  # reaped between listing and reading
            if READER_MAIN in command:
                continue
            series = program + (NOT_REAPED if status == psutil.STATUS_ZOMBIE else "")
            counts[series] += 1
            commands.setdefault(series, command)
        return ProbeResult(
            [Reading(series, "count", n) for series, n in sorted(counts.items())],
            {series: {"noun": NOUN, "command": commands[series]} for series in counts},
        )


def _command(child: psutil.Process) -> str:
    """The child's command line (a zombie's is gone: empty), shortened for the report."""
    try:
        command = " ".join(child.cmdline())
    except (psutil.ZombieProcess, psutil.AccessDenied):
        command = ""
    return command if len(command) <= 200 else command[:197] + "..."
