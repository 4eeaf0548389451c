"""Clean: every request borrows one of four pooled connections to a local server and returns it."""

import queue
import socket
import time

EXPECTED = "clean"

_server: socket.socket | None = None
_pool: "queue.Queue[socket.socket]" = queue.Queue()
_accepted: list[socket.socket] = []


def setup() -> None:
    global _server
    _server = socket.create_server(("127.0.0.1", 0))
    for _ in range(4):
        _pool.put(socket.create_connection(_server.getsockname()))
        _accepted.append(_server.accept()[0])


def step() -> None:
    connection = _pool.get()
    try:
        connection.sendall(b"ping")
    finally:
        _pool.put(connection)
    time.sleep(0.005)


def teardown() -> None:
    while not _pool.empty():
        _pool.get().close()
    for connection in _accepted:
        connection.close()
    if _server is not None:
        _server.close()
