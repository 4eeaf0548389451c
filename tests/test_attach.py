"""Attaching the agent to a Python process that is already running and never imported leaksoak
(a plain HTTP service on 127.0.0.1), and taking it out again; and the attaches that are refused,
each with one line, the process untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TESTS, free_port
from servers import loading

from soak.errors import BadInput
from soak.supervisor.attach import Interpreter, attach, check_interpreter, detach
from soak.supervisor.watched import AgentClient

SERVER = TESTS / "services" / "plain_server.py"
pytestmark = pytest.mark.skipif(sys.version_info >= (3, 14) or sys.platform != "linux",
                                reason="the injector (hypno, the attach extra) is for Linux and Python before 3.14")



class PlainServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(self.port)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "listening"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as reply:
            body: bytes = reply.read()
            return body

    def allocators(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.get("/allocators"))
        return state


@pytest.fixture
def server() -> Iterator[PlainServer]:
    started = PlainServer()
    yield started
    started.proc.kill()
    started.proc.wait()


def test_attach_starts_an_agent_that_sees_the_leak_and_detach_gives_the_allocators_back(server: PlainServer) -> None:
    before = server.allocators()
    assert before["sampler_loaded"] is False and before["tracemalloc"] is False
    path = attach(server.proc.pid)
    try:
        client = AgentClient(path)
        assert client.hello["pid"] == server.proc.pid and client.hello["attached"] is True
        assert server.allocators()["hooks"] == [True, True]  # the sampler's hooks are the allocators now
        for _ in range(300):
            server.get("/leak")
        reply = client.snapshot(0, 30)
        client.close()
        assert reply is not None
        snapshot: dict[str, Any] = dict(reply)
        stacks = {int(k): frames for k, frames in snapshot["new_stacks"].items()}
        leak_line = next(i for i, t in enumerate(SERVER.read_text().splitlines(), 1) if "# LEAK" in t)
        assert any(f[0] == str(SERVER) and f[1] == leak_line for site in snapshot["sites"] for f in stacks.get(site[0], []))
    finally:
        assert detach(path) is True
    deadline = time.monotonic() + 10
    while os.path.exists(path):
        assert time.monotonic() < deadline, "the detached agent's socket is still there"
        time.sleep(0.05)
    after = server.allocators()
    assert after["hooks"] == [False, False]  # the interpreter's own allocators again
    assert after["path"] == before["path"] and after["tracemalloc"] is False
    assert server.get("/ok")  # it served throughout and still does
    assert server.proc.poll() is None


def test_an_agent_the_service_started_is_not_detached_by_request(tmp_path: Path) -> None:
    code = ("import soak.agent, sys, time\n"
            f"soak.agent.start({str(tmp_path / 'a' / 'agent.sock')!r})\n"
            "print('up', flush=True)\ntime.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert detach(str(tmp_path / "a" / "agent.sock")) is False
        assert AgentClient(str(tmp_path / "a" / "agent.sock")).hello["attached"] is False
    finally:
        proc.kill()
        proc.wait()


def test_attach_to_a_process_that_is_not_python_is_refused() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(BadInput, match=r"^cannot attach to pid \d+: it is not a Python process \(sleep\)$"):
            attach(proc.pid)
    finally:
        proc.kill()
        proc.wait()


def test_attach_to_another_python_version_or_a_free_threaded_build_is_refused() -> None:
    other = (3, sys.version_info[1] + 1)
    with pytest.raises(BadInput, match=rf"runs Python 3\.{other[1]} and this leaksoak Python 3\.{sys.version_info[1]}"):
        check_interpreter(1234, Interpreter(other, False))
    with pytest.raises(BadInput, match="free-threaded"):
        check_interpreter(1234, Interpreter(sys.version_info[:2], True))
    check_interpreter(1234, Interpreter(sys.version_info[:2], False))  # the same build: allowed


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to start a process as another user")
def test_attach_to_another_users_process_without_the_capability_is_refused_and_names_what_to_grant(server: PlainServer) -> None:
    code = ("from soak.errors import BadInput\nfrom soak.supervisor.attach import attach\n"
            f"try:\n    attach({server.proc.pid})\nexcept BadInput as exc:\n    print(exc)\n")
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                           sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith(f"cannot attach to pid {server.proc.pid}: it runs as uid 0, this as uid 65534;")
    assert "securityContext.capabilities.add: [SYS_PTRACE]" in line and "shareProcessNamespace: true" in line
    assert server.allocators()["sampler_loaded"] is False  # untouched


def test_soak_watch_attach_pins_the_leak_of_a_service_that_never_imported_leaksoak_and_leaves_it_as_it_was(
        server: PlainServer, tmp_path: Path) -> None:
    from conftest import leak_lines, run_soak

    before = server.allocators()
    with loading(server.get, "/leak"):
        result = run_soak("watch", "--pid", str(server.proc.pid), "--attach", "--db", str(tmp_path / "soak.db"),
                          "--duration", "15s", "--interval", "0.5s", "--format", "json", "-q", timeout=180)
    assert result.returncode == 1, result.stdout + result.stderr
    report = result.json()
    assert report["verdict"] == "leak"
    top = report["findings"][0]
    assert top["where"]["file"] == str(SERVER) and top["where"]["line"] in leak_lines(SERVER), top
    after = server.allocators()
    assert after["hooks"] == [False, False] and after["path"] == before["path"]
    assert not any(name.startswith(f"agent-{server.proc.pid}") for name in os.listdir(f"/tmp/leaksoak-{os.getuid()}"))
    assert server.get("/ok") and server.proc.poll() is None


def test_soak_watch_attach_refused_is_one_line_and_exit_2(tmp_path: Path) -> None:
    from conftest import run_soak

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        result = run_soak("watch", "--pid", str(sleeper.pid), "--attach", "--db", str(tmp_path / "soak.db"), "--duration", "5s")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert result.returncode == 2
    assert result.stderr.strip() == f"soak: error: cannot attach to pid {sleeper.pid}: it is not a Python process (sleep)"
    assert not (tmp_path / "soak.db").exists()  # nothing written


@pytest.mark.parametrize(("args", "message"), [
    (("--tracer", "exact"), "--tracer exact chooses the tracer of an agent this watch attaches: add --attach"),
    (("--attach", "--tracer", "off"), "--attach starts an agent with the sampled or exact tracer, not off"),
])
def test_soak_watch_tracer_and_attach_that_do_not_go_together_are_refused(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    from conftest import run_soak

    result = run_soak("watch", "--pid", str(os.getpid()), *args, "--db", str(tmp_path / "soak.db"), "--duration", "5s")
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1


def test_soak_watch_attach_to_a_gunicorn_master_covers_its_workers(tmp_path: Path) -> None:
    import psutil
    from conftest import run_soak
    from servers import LEAK_LINE, SERVICES, worker_pid

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "wsgi_app:app"],
                            cwd=SERVICES, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path: str) -> str | None:
        return worker_pid(port, path)

    try:
        deadline = time.monotonic() + 60
        while not get("/ok") or len(psutil.Process(proc.pid).children()) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        workers = {child.pid for child in psutil.Process(proc.pid).children()}
        with loading(get, "/leak"):
            result = run_soak("watch", "--pid", str(proc.pid), "--attach", "--db", str(tmp_path / "soak.db"),
                              "--duration", "25s", "--interval", "0.5s", "--format", "json", "-q", timeout=240)
        assert result.returncode == 1, result.stdout + result.stderr
        report = result.json()
        assert workers <= {p["pid"] for p in report["processes"]}, report["processes"]  # each worker attached and watched
        top = report["tree_findings"][0]
        assert top["where"]["line"] == LEAK_LINE and top["processes"] == 2, top
        # every agent this watch attached is taken out again, and the service serves on
        assert not any(name.startswith(f"agent-{pid}") for pid in {proc.pid, *workers}
                       for name in os.listdir(f"/tmp/leaksoak-{os.getuid()}"))
        assert get("/ok") is not None and proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
