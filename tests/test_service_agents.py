"""An agent in every Python process of a service started with ``python -m soak.agent -- COMMAND``:
real gunicorn (pre-fork) and uvicorn (spawned) servers on 127.0.0.1, driven by real HTTP requests.

Each worker answers on its own socket, beside the one given (``agent-<pid>.sock``), and its tracer
sees the leak the requests make; a worker the server recycles takes its socket with it, and its
replacement has an agent of its own; a process that is not Python is left alone."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import TESTS, free_port

SERVICES = TESTS / "services"
LEAK_LINE = next(i for i, text in enumerate((SERVICES / "wsgi_app.py").read_text().splitlines(), 1) if "# LEAK" in text)
ASGI_LEAK_LINE = next(i for i, text in enumerate((SERVICES / "asgi_app.py").read_text().splitlines(), 1) if "# LEAK" in text)
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Unix sockets with peer credentials")



def ask(path: Path, kind: str, **fields: Any) -> dict[str, Any]:
    """One request to the agent listening at ``path``, and its reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(str(path))
        conn.sendall(json.dumps({"v": 1, "type": kind, **fields}).encode() + b"\n")
        reader = conn.makefile("rb")
        reply: dict[str, Any] = json.loads(reader.readline())
        return reply


class Served:
    """A server under ``python -m soak.agent``, its agents' folder, and a bounded request loop."""

    def __init__(self, tmp: Path, command: list[str], port: int) -> None:
        self.folder = tmp / "agents"
        self.port = port
        self.log = tmp / "server.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "soak.agent", "--socket", str(self.folder / "agent.sock"), "--frames", "8",
                 "--sample-interval", "512", "--", *command],
                cwd=SERVICES, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while not self.get("/ok"):
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.2)

    def get(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as reply:
                pid: str = reply.headers["X-Worker-Pid"]
                return pid
        except OSError:
            return None

    def load(self, path: str, requests: int) -> set[int]:
        """``requests`` requests (a bounded loop); the pids of the workers that answered."""
        return {int(pid) for _ in range(requests) if (pid := self.get(path)) is not None}

    def workers(self, count: int) -> list[psutil.Process]:
        """The server's ``count`` worker processes, once each has its agent's socket."""
        deadline = time.monotonic() + 60
        while True:
            found = [child for child in psutil.Process(self.proc.pid).children(recursive=True)
                     if self.socket_of(child.pid).exists()]
            if len(found) >= count:
                return found
            assert time.monotonic() < deadline, (f"{len(found)} of {count} workers have an agent; "
                                                 f"folder: {sorted(p.name for p in self.folder.iterdir())}\n{self.log.read_text()}")
            time.sleep(0.2)

    def socket_of(self, pid: int) -> Path:
        return self.folder / f"agent-{pid}.sock"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for server in started:
        server.close()


def leak_sites(reply: dict[str, Any], file: str, line: int) -> list[list[Any]]:
    """The sampled sites of a snapshot whose traceback has ``file:line``."""
    stacks = {int(key): frames for key, frames in reply["new_stacks"].items()}
    return [site for site in reply["sites"] if any(f[0].endswith(file) and f[1] == line for f in stacks.get(site[0], []))]


def test_each_gunicorn_worker_has_an_agent_that_sees_its_leak(tmp_path: Path, served: list[Served]) -> None:
    port = free_port()
    server = Served(tmp_path, ["gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi_app:app"], port)
    served.append(server)
    # the console script was exec'd in the agent's place: the master keeps the pid and the socket given
    assert ask(server.folder / "agent.sock", "hello")["pid"] == server.proc.pid
    workers = server.workers(2)
    assert len({w.pid for w in workers}) == 2 and server.proc.pid not in {w.pid for w in workers}
    answered = server.load("/leak", 400)
    for worker in workers:
        hello = ask(server.socket_of(worker.pid), "hello")
        assert hello["pid"] == worker.pid and hello["tracer"] == "sampled" and hello["sample_interval"] == 512
        if worker.pid in answered:
            snapshot = ask(server.socket_of(worker.pid), "snapshot", seq=0)
            assert snapshot["type"] == "snapshot" and snapshot["pid"] == worker.pid
            assert leak_sites(snapshot, "wsgi_app.py", LEAK_LINE), snapshot["new_stacks"]
    assert answered & {w.pid for w in workers}, answered


def test_a_recycled_gunicorn_worker_takes_its_socket_and_its_successor_has_an_agent(tmp_path: Path, served: list[Served]) -> None:
    port = free_port()
    server = Served(tmp_path, ["gunicorn", "-w", "1", "--max-requests", "20", "-b", f"127.0.0.1:{port}", "wsgi_app:app"], port)
    served.append(server)
    first = server.workers(1)[0]
    answered = server.load("/ok", 60)
    assert len(answered) >= 2, answered  # recycled at least once
    deadline = time.monotonic() + 30
    while server.socket_of(first.pid).exists():
        assert time.monotonic() < deadline, "the recycled worker left its socket behind"
        time.sleep(0.2)
    current = server.workers(1)[0]
    assert current.pid != first.pid and ask(server.socket_of(current.pid), "hello")["pid"] == current.pid


def test_each_spawned_uvicorn_worker_has_an_agent_that_sees_its_leak(tmp_path: Path, served: list[Served]) -> None:
    port = free_port()
    server = Served(tmp_path, ["uvicorn", "--workers", "2", "--host", "127.0.0.1", "--port", str(port), "asgi_app:app"], port)
    served.append(server)
    workers = server.workers(2)
    answered = server.load("/leak", 400)
    seen = 0
    for worker in workers:
        hello = ask(server.socket_of(worker.pid), "hello")
        assert hello["pid"] == worker.pid and hello["sample_interval"] == 512
        if worker.pid in answered:
            snapshot = ask(server.socket_of(worker.pid), "snapshot", seq=0)
            assert leak_sites(snapshot, "asgi_app.py", ASGI_LEAK_LINE), snapshot["new_stacks"]
            seen += 1
    assert seen >= 1, answered


def test_a_program_that_is_not_python_is_left_alone_and_its_python_child_gets_an_agent(tmp_path: Path) -> None:
    folder = tmp_path / "agents"
    child = "import os, sys, time; print(os.getpid(), flush=True); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-m", "soak.agent", "--socket", str(folder / "agent.sock"), "--",
                             "sh", "-c", f"{sys.executable} -c '{child}'; true"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        python_pid = int(proc.stdout.readline())
        deadline = time.monotonic() + 30
        while not (folder / "agent.sock").exists():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # sh, exec'd in the agent's place (its pid), has no agent: the first Python process under it
        # listens on the socket given, as a wrapper script's server would
        assert ask(folder / "agent.sock", "hello")["pid"] == python_pid != proc.pid
        assert sorted(p.name for p in folder.iterdir()) == ["agent.sock"]
    finally:
        for process in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
            process.kill()
        proc.wait()


def test_an_unknown_program_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "soak.agent", "--", "no-such-program-here"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("soak.agent: no such script or program 'no-such-program-here'") and proc.stderr.count("\n") == 1
