"""An agent in every Python process of a service started with ``python -m soak.agent -- COMMAND``:
real gunicorn (pre-fork) and uvicorn (spawned) servers on 127.0.0.1, driven by real HTTP requests.

Each worker answers on its own socket, beside the one given (``agent-<pid>.sock``), and its tracer
sees the leak the requests make; a worker the server recycles takes its socket with it, and its
replacement has an agent of its own; a process that is not Python is left alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import free_port
from servers import ASGI_LEAK_LINE, LEAK_LINE, Served, ask

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Unix sockets with peer credentials")


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


# An agent's client, in the process it watches: every module loaded on a thread of the agent's
# (a connection's, the listener's), by name, printed once the client asked for a hello and two
# snapshots.
LOADS_ON_AGENT_THREADS = """
import json, socket, sys, threading
loaded = []
sys.addaudithook(lambda event, args: loaded.append((threading.current_thread().name, args[0])) if event == "import" else None)
import soak.agent
soak.agent.start(sys.argv[1])
with socket.socket(socket.AF_UNIX) as conn:
    conn.connect(sys.argv[1])
    reader = conn.makefile("rb")
    for request in ({"v": 1, "type": "hello"}, {"v": 1, "type": "snapshot", "seq": 0}, {"v": 1, "type": "snapshot", "seq": 1}):
        conn.sendall(json.dumps(request).encode() + b"\\n")
        assert json.loads(reader.readline())["type"] == request["type"], request
print(json.dumps(sorted({name for thread, name in loaded if thread.startswith("soak-agent")})))
"""


def test_an_agent_loads_no_module_on_its_own_threads(tmp_path: Path) -> None:
    # A module is loaded under a lock of its own. A pre-fork server forking its workers while its
    # master's agent loaded one for a first client left each worker a copy of that lock held by
    # no thread: the worker's agent hung on its first client (a gunicorn worker's hello, in CI).
    # Whatever a client needs is loaded when the agent starts, on the thread that starts it.
    result = subprocess.run([sys.executable, "-c", LOADS_ON_AGENT_THREADS, str(tmp_path / "a.sock")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
