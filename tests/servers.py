"""Real servers for the service tests: a server started under ``python -m soak.agent -- COMMAND``
(gunicorn, uvicorn) on 127.0.0.1, its agents' folder, one request to an agent, and requests to a
server for as long as a block runs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from conftest import TESTS

SERVICES = TESTS / "services"
LEAK_LINE = next(i for i, text in enumerate((SERVICES / "wsgi_app.py").read_text().splitlines(), 1) if "# LEAK" in text)
ASGI_LEAK_LINE = next(i for i, text in enumerate((SERVICES / "asgi_app.py").read_text().splitlines(), 1) if "# LEAK" in text)


def worker_pid(port: int, path: str) -> str | None:
    """One request to the test app on 127.0.0.1:``port``: the pid of the worker that answered."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as reply:
            pid: str = reply.headers["X-Worker-Pid"]
            return pid
    except OSError:
        return None


@contextmanager
def loading(get: Callable[[str], object], path: str, pause_s: float = 0.002) -> Iterator[None]:
    """Requests to ``path`` (each ``get(path)``) for as long as the block runs."""
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            get(path)
            time.sleep(pause_s)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    try:
        yield
    finally:
        stop.set()
        loader.join()


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
        return worker_pid(self.port, path)

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
