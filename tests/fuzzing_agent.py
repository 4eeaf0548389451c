"""Fuzz target: the agent socket of a real service (tests/services/http_service.py under ``python -m
soak.agent``): every request answered or refused, the service serving throughout. tests/fuzzing.py,
which lists every target, re-exports it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from conftest import free_port

from soak.supervisor.watched import connect_unix

SERVICE = Path(__file__).parent / "services" / "http_service.py"


class AgentService:
    """tests/services/http_service.py under ``python -m soak.agent``, in its own process."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.socket = tmp / "agent" / "agent.sock"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soak.agent", "--socket", str(self.socket), "--frames", "4", "--", str(SERVICE), str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "listening"

    def request(self, payload: bytes, *, close_write: bool = True, timeout_s: float = 20) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout_s)
            connect_unix(client, str(self.socket), timeout_s)  # a backlog still full after a flood: again
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                client.sendall(payload)
            if close_write:
                with contextlib.suppress(OSError):
                    client.shutdown(socket.SHUT_WR)
            chunks = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := client.recv(1 << 20):
                    chunks += chunk
            return chunks

    def serves_http(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ok", timeout=10) as response:
            return bool(response.read().startswith(b"ok"))

    def says_hello(self) -> bool:
        reply = json.loads(self.request(b'{"v": 1, "type": "hello"}\n').splitlines()[0])
        return bool(reply["type"] == "hello" and reply["pid"] == self.proc.pid)

    def close(self) -> str:
        """Stop the service; its stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        _, stderr = self.proc.communicate(timeout=30)
        return stderr


def check_agent_request(service: AgentService, payload: bytes) -> None:
    """Every reply line is a JSON answer (hello, snapshot or error); the service lives on."""
    reply = service.request(payload)
    for line in reply.splitlines():
        message = json.loads(line)
        assert message["type"] in ("hello", "snapshot", "error"), message
        if message["type"] == "error":
            assert message["message"].startswith(("refused:", "snapshot failed:")), message
    assert service.proc.poll() is None, "the service died"


def flood(service: AgentService, connections: int) -> None:
    """``connections`` clients at once, each opened and left idle, then all closed."""
    clients = []
    try:
        for _ in range(connections):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(10)
            try:
                client.connect(str(service.socket))
            except OSError:  # a full backlog refuses: the service itself goes on
                client.close()
                continue
            clients.append(client)
        assert service.serves_http()
    finally:
        for client in clients:
            client.close()
