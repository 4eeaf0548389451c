"""``soak watch`` of a process tree: a pre-fork master and its workers, or a server and the
interpreters it spawned.

The watched process is the tree's root; each descendant that runs an agent (or, with
``--attach``, each Python descendant, attached) is watched as a run of its own, whose
``parent_run_id`` is the root's run. Each keeps its own series and is judged on its own; the
root's report, its verdict and its ``/metrics`` judge them together (soak.judging.tree). A worker
that exits or is replaced ends its own run as completed, and is an event of the root's run; the
workers that start later are picked up as they appear.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import psutil

from soak.errors import BadInput, SoakError
from soak.inprocess.agent.embedding import AgentOptions
from soak.inprocess.probes import process_table
from soak.model.options import WatchOptions
from soak.model.report import tree_rank
from soak.model.verdicts import most_severe
from soak.supervisor.metrics import MAX_SLOTS
from soak.supervisor.watched import WatchedProcess, agent_socket_for
from soak.supervisor.wiring import Member, supervise

if TYPE_CHECKING:
    from soak.judging.suppressions import Rule
    from soak.supervisor.results import RunResult
    from soak.supervisor.schedule import Supervisor

POLL_S = 0.5
"""How often the tree is searched for processes that started."""
JOIN_S = 60.0


@dataclass
class _Process:
    pid: int
    slot: int | None
    thread: threading.Thread
    supervisor: Supervisor | None = None
    result: RunResult | None = None


class ProcessTree:
    """The descendants of a watched process, each watched as a run of its own."""

    def __init__(self, root: WatchedProcess, options: WatchOptions, rules: Sequence[Rule], name: str) -> None:
        self.root = root
        self.options = options
        self.rules = tuple(rules)
        self.name = name
        self.root_run_id: int | None = None
        self._elapsed: Callable[[], float] = lambda: 0.0
        self._processes: dict[int, _Process] = {}
        self._refused: set[int] = set()
        self._events: list[tuple[float, str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._poller: threading.Thread | None = None

    # -- following the tree

    def start(self, root_run_id: int, elapsed: Callable[[], float]) -> None:
        """Search the tree now and every :data:`POLL_S` until :meth:`stop`."""
        self.root_run_id, self._elapsed = root_run_id, elapsed
        self._poller = threading.Thread(target=self._poll, name="soak-tree", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                descendants = process_table.children(self.root.pid, recursive=True)
            except psutil.Error:
                descendants = []
            for proc in descendants:
                if proc.pid not in self._processes and proc.pid not in self._refused and self._watchable(proc.pid):
                    self._follow(proc.pid)
            self._stopping.wait(POLL_S)

    def _watchable(self, pid: int) -> bool:
        """A descendant with an agent listening; with --attach, any Python descendant."""
        if agent_socket_for(pid, None, beside=self.root.socket_path) is not None:
            return True
        if not self.options.attach:
            return False
        from soak.supervisor.attach import interpreter_of

        try:
            return interpreter_of(pid) is not None
        except (BadInput, OSError, psutil.Error):
            self._refused.add(pid)  # not Python (or unreadable): not asked again
            return False

    def _follow(self, pid: int) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            used = {p.slot for p in self._processes.values() if p.thread.is_alive()}
            slot = next((n for n in range(1, MAX_SLOTS + 1) if n not in used), None)
            process = _Process(pid, slot, threading.Thread(target=self._watch, args=(pid,), name=f"soak-tree-{pid}", daemon=True))
            self._processes[pid] = process
        process.thread.start()

    def _watch(self, pid: int) -> None:
        process = self._processes[pid]
        assert self.root_run_id is not None
        try:
            attach = AgentOptions(tracer=self.options.attach_tracer) if self.options.attach else None
            path = agent_socket_for(pid, None, beside=self.root.socket_path)
            subject = WatchedProcess(pid, match=None, socket_path=path, use_agent=True,
                                     attach=attach if path is None else None)
        except (SoakError, OSError, psutil.Error) as exc:  # gone already, or an attach refused
            self._refused.add(pid)
            self._event("process_refused", f"pid {pid} is not watched: {exc}", {"pid": pid})
            with self._lock:
                del self._processes[pid]
            return
        if subject.gone.is_set() or not psutil.pid_exists(pid):
            subject.stop()
            with self._lock:
                del self._processes[pid]
            return
        remaining = max(1.0, (self.options.duration_s or 0.0) - self._elapsed())
        options = replace(self.options, pid=pid, match=None, duration_s=remaining, metrics_port=None, tree=False,
                          name=f"{self.name} pid {pid}")

        def started(run_id: int) -> None:
            self._event("process_start", f"pid {pid} is run {run_id}: {subject.describe()}", {"pid": pid, "run_id": run_id})

        def register(supervisor: Supervisor) -> None:
            process.supervisor = supervisor
            if self._stopping.is_set():  # the watch ended while this process's run was being set up
                supervisor.end("completed", None)

        try:
            process.result = supervise(options, options.target, options.name or "", subject, subject.hello, self.rules,
                                       member=Member(self.root_run_id, pid), on_start=started, on_supervisor=register)
        except SoakError as exc:
            self._event("process_failed", f"pid {pid}: its run failed: {exc}", {"pid": pid})
            return
        result = process.result
        self._event("process_exit", f"pid {pid} {result.reason or result.status}; run {result.run_id}, {result.verdict}",
                    {"pid": pid, "run_id": result.run_id, "status": result.status, "verdict": result.verdict})

    def _event(self, kind: str, message: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._events.append((self._elapsed(), kind, message, data))

    def pop_events(self) -> list[tuple[float, str, str, dict[str, Any]]]:
        """Events for the root's run since the last call (recorded by the root's own job thread)."""
        with self._lock:
            events, self._events = self._events, []
            return events

    def stop(self) -> None:
        """Stop following, end every descendant's run (each takes its final snapshot), and wait."""
        self._stopping.set()
        if self._poller is not None:
            self._poller.join(JOIN_S)
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            if process.supervisor is not None:
                process.supervisor.end("completed", None)
        deadline = time.monotonic() + JOIN_S
        for process in processes:
            process.thread.join(max(0.0, deadline - time.monotonic()))

    # -- the tree judged together

    def results(self) -> list[RunResult]:
        with self._lock:
            return [p.result for p in self._processes.values() if p.result is not None]

    def verdict(self, root_verdict: str) -> str:
        """The most severe verdict of the root's run and of every descendant's that ended."""
        return most_severe([root_verdict, *(result.verdict for result in self.results())])

    def published(self, root_state: dict[str, Any], top: int) -> dict[str, Any]:
        """The root's metrics state with the tree's processes judged together: each finding once,
        its growth summed over the processes that show it; memory summed over the tree; the
        processes one by one in their slots."""
        with self._lock:
            live = [(p.slot, p.supervisor.state()) for p in self._processes.values()
                    if p.supervisor is not None and p.thread.is_alive()]
        states = [root_state, *(state for _, state in live)]
        findings: dict[str, dict[str, Any]] = {}
        for state in states:
            for finding in state.get("findings", []):
                known = findings.get(finding["finding_id"])
                if known is None:
                    findings[finding["finding_id"]] = {**finding, "processes": 1}
                    continue
                known["processes"] += 1
                known["growth_bytes_per_hour"] = (known["growth_bytes_per_hour"] or 0.0) + (finding["growth_bytes_per_hour"] or 0.0)
                known["verdict"] = most_severe([known["verdict"], finding["verdict"]])
        ranked = sorted(findings.values(), key=lambda f: tree_rank(f["verdict"], f["processes"], f["growth_bytes_per_hour"] or 0.0))
        memory: dict[str, float] = {}
        for state in states:
            for kind, value in state.get("process", {}).items():
                if value is not None and kind not in ("cgroup_bytes", "cgroup_limit"):
                    memory[kind] = memory.get(kind, 0.0) + value
        process = {**root_state.get("process", {}), **memory}
        slots = {"root": root_state.get("process", {}), **{str(slot): state.get("process", {}) for slot, state in live if slot}}
        live_verdict = most_severe(state.get("verdict", "inconclusive") for state in states)
        return {**root_state, "verdict": self.verdict(live_verdict),
                "findings": ranked[:top], "findings_total": max(len(findings), root_state.get("findings_total", 0)),
                "process": process, "tree": {"processes": len(states), "slots": slots}}
