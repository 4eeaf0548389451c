"""``soak watch``: the supervisor for a process someone else started.

Any process gets process-level series (RSS, USS, PSS, fds, threads, its cgroup's memory); a
Python process that runs the agent (soak.agent) also answers heap snapshots over its socket
(soak.supervisor.watched). With ``--match``, a watched service that restarts under a new pid
continues the same run as a new segment; its descendants that run an agent are followed, each a
run of its own (soak.supervisor.tree). The watched process is never stopped or signalled by
leaksoak.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import psutil

from soak.errors import BadInput
from soak.inprocess.agent.embedding import AgentOptions
from soak.model.options import DEFAULT_DURATION_S, WatchOptions
from soak.supervisor.signals import file_size_limit_as_error
from soak.supervisor.tree import ProcessTree
from soak.supervisor.watched import WatchedProcess, find_matching, own_family, roots

if TYPE_CHECKING:
    from soak.supervisor.results import Progress, RunResult


def resolve_pid(options: WatchOptions) -> tuple[int, re.Pattern[str] | None]:
    if (options.pid is None) == (options.match is None):
        raise BadInput("give either --pid PID or --match REGEX")
    if options.pid is not None:
        if not 0 < options.pid < 2**31 or not psutil.pid_exists(options.pid):  # a pid is a positive C int
            raise BadInput(f"no process with pid {options.pid}")
        return options.pid, None
    try:
        pattern = re.compile(options.match or "")
    except re.error as exc:
        raise BadInput(f"--match {options.match!r} is not a regular expression: {exc}") from exc
    found = find_matching(pattern, own_family())
    if not found:
        raise BadInput(f"no running process matches {options.match!r}")
    if len(found) > 1 and len(roots(found)) == 1:  # a master and its workers: the master, whose tree is followed
        found = roots(found)
    if len(found) > 1:
        pids = ", ".join(str(p.pid) for p in found[:5])
        raise BadInput(f"{len(found)} processes match {options.match!r} (pids {pids}); make the pattern narrower")
    return found[0].pid, pattern


def watch(options: WatchOptions, on_progress: Callable[[Progress], None] | None = None,
          on_start: Callable[[WatchOptions, int, str], None] | None = None) -> RunResult:
    """Watch a running process and return how the run ended. ``on_start`` is called with the
    effective options, the run id and how the process is watched (through its agent, or not)."""
    from soak.storage import check_before_writing
    from soak.supervisor.checks import check, load_rules
    from soak.supervisor.wiring import supervise

    pid, pattern = resolve_pid(options)
    options = replace(options, duration_s=options.duration_s or DEFAULT_DURATION_S)
    check(options)
    rules = load_rules(options)
    with file_size_limit_as_error():
        check_before_writing(options.db_path)
        subject = WatchedProcess(pid, match=pattern, socket_path=options.socket_path, use_agent=options.agent,
                                 attach=AgentOptions(tracer=options.attach_tracer) if options.attach else None)
        name = options.name or (psutil.Process(pid).name() if pattern is None else options.match or options.target)
        tree = ProcessTree(subject, options, rules, name) if options.tree and options.agent else None
        return supervise(options, options.target, name, subject, subject.hello, rules, on_progress=on_progress, tree=tree,
                         on_start=None if on_start is None else lambda run_id: on_start(options, run_id, subject.describe()))
