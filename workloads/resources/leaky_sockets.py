"""Leaky: every tenth request opens a connection to a local server and keeps it open."""

import socket
import time

EXPECTED = "leak"

_server: socket.socket | None = None
_connections: list[socket.socket] = []
_calls = 0


def setup() -> None:
    global _server
    _server = socket.create_server(("127.0.0.1", 0), backlog=4096)


def step() -> None:
    global _calls
    _calls += 1
    if _calls % 10 == 0 and _server is not None:
        _connections.append(socket.create_connection(_server.getsockname()))  # LEAK
    time.sleep(0.005)


def teardown() -> None:
    for connection in _connections:
        connection.close()
    if _server is not None:
        _server.close()
